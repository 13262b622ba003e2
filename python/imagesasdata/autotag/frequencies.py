"""How often each tag occurs: the book's Figure 6.3 (top labels above a confidence) and, with several taggers in
one table, its Figure 6.4 (label frequencies side by side)."""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa

from ..io.tables import to_arrow
from ..errors import check_number
from .tables import tag_columns

FREQUENCY_SCHEMA = pa.schema([
    ("tagger", pa.string()), ("label", pa.string()), ("images", pa.int64()), ("share", pa.float64()),
    ("tagged_images", pa.int64()), ("rank", pa.int32()),
])


def label_frequencies(tags, *, min_confidence: float = 0.0, top_n: int | None = None) -> pa.Table:
    """Return images per tag, per tagger: columns tagger, label, images (distinct images carrying the tag at or above
    min_confidence), share (of that tagger's successfully tagged images), tagged_images and rank (1 = most frequent).

    tags: one tag table, or several concatenated (pyarrow.concat_tables) to compare taggers; a celebrity table
    counts celebrities. top_n keeps the most frequent tags of each tagger. Ties are ordered by name.
    """
    if isinstance(tags, (list, tuple)):
        tags = pa.concat_tables([to_arrow(t) for t in tags], promote_options="permissive")
    tags = to_arrow(tags)
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    if top_n is not None:
        top_n = int(check_number("top_n", top_n, 1, None, integer=True))
    tag_column, confidence_column = tag_columns(tags)
    n = tags.num_rows
    taggers = tags["tagger"].to_pylist() if "tagger" in tags.column_names else [None] * n
    errors = tags["error"].to_pylist() if "error" in tags.column_names else [None] * n
    confidences = tags[confidence_column].to_pylist() if confidence_column else [None] * n
    images = [str(v) for v in tags["image_id"].to_pylist()]
    tagged = defaultdict(set)
    carrying = defaultdict(lambda: defaultdict(set))
    for tagger, image, tag, confidence, error in zip(taggers, images, tags[tag_column].to_pylist(), confidences, errors):
        if error is not None:
            continue
        tagged[tagger].add(image)
        if tag is not None and (confidence is None or confidence >= min_confidence):
            carrying[tagger][tag].add(image)
    rows = []
    for tagger in sorted(tagged, key=lambda t: (t is None, t or "")):
        counted = sorted(((len(ids), tag) for tag, ids in carrying[tagger].items()), key=lambda x: (-x[0], x[1]))
        total = len(tagged[tagger])
        for rank, (count, tag) in enumerate(counted[:top_n] if top_n else counted, start=1):
            rows.append({"tagger": tagger, "label": tag, "images": count, "share": count / total,
                         "tagged_images": total, "rank": rank})
    return pa.Table.from_pylist(rows, schema=FREQUENCY_SCHEMA)
