"""A contact sheet per cluster: the images of each k-means cluster on one picture, the most typical first, so a
person can say what the cluster is (the exploratory reading the book describes in section 1.2)."""

from __future__ import annotations

import math

import pyarrow as pa

from ..errors import BadImageError, ImagesAsDataError, listing
from ..io.images import open_rgb
from ..io.locks import claimed_directory
from ..io.tables import atomic_path, to_arrow, write_json

SHEETS_DESCRIPTION = "sheets.json"


def cluster_sheets(clusters, out, *, per_cluster: int = 24, columns: int = 8, thumb_size: int = 112,
                   overwrite: bool = False) -> pa.Table:
    """Write cluster-NN.png into the new folder `out`, one contact sheet per cluster of embedding_clusters(): up to
    per_cluster images, nearest the centre first, each captioned with its image_id.

    Returns cluster, cluster_size, shown (images drawn) and sheet (the PNG's path). overwrite=True replaces the
    sheets of an earlier call in `out`. Unreadable images are drawn as grey squares marked "unreadable".
    """
    table = to_arrow(clusters)
    missing = [c for c in ("image_id", "path", "cluster", "rank") if c not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the clusters table lacks {listing(missing)}; pass the result of embedding_clusters()")
    for name, value, low in (("per_cluster", per_cluster, 1), ("columns", columns, 1), ("thumb_size", thumb_size, 16)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ImagesAsDataError(f"{name}={value!r}: use a whole number of at least {low}")
    rows = sorted(table.select(["image_id", "path", "cluster", "rank"]).to_pylist(), key=lambda r: (r["cluster"], r["rank"]))
    by_cluster: dict = {}
    for row in rows:
        by_cluster.setdefault(row["cluster"], []).append(row)
    written = []
    with claimed_directory(out, what="contact sheet folder", marker=SHEETS_DESCRIPTION, resume=False,
                           overwrite=overwrite, option_hint="another folder") as folder:
        write_json({"format": "imagesasdata-cluster-sheets", "status": "started", "clusters": len(by_cluster)},
                   folder / SHEETS_DESCRIPTION)
        digits = max(2, len(str(max(by_cluster, default=0))))
        for cluster, members in by_cluster.items():
            target = folder / f"cluster-{cluster:0{digits}d}.png"
            sheet = _sheet(cluster, members, per_cluster, columns, thumb_size)
            with atomic_path(target) as temporary:
                sheet.save(temporary, format="PNG")
            written.append({"cluster": cluster, "cluster_size": len(members),
                            "shown": min(len(members), per_cluster), "sheet": str(target)})
        write_json({"format": "imagesasdata-cluster-sheets", "status": "complete", "clusters": len(by_cluster),
                    "per_cluster": per_cluster}, folder / SHEETS_DESCRIPTION)
    return pa.Table.from_pylist(written, schema=pa.schema([("cluster", pa.int32()), ("cluster_size", pa.int32()),
                                                           ("shown", pa.int32()), ("sheet", pa.string())]))


def _sheet(cluster: int, members: list, per_cluster: int, columns: int, thumb_size: int):
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=11)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    shown = members[:per_cluster]
    pad, caption, header = 6, 16, 24
    across = max(1, min(columns, len(shown)))
    down = max(1, math.ceil(len(shown) / across))
    cell_w, cell_h = thumb_size + pad, thumb_size + caption + pad
    sheet = Image.new("RGB", (max(240, pad + across * cell_w), header + down * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    more = f" (the {len(shown)} nearest its centre shown)" if len(members) > len(shown) else ""
    draw.text((pad, 5), f"cluster {cluster}: {len(members)} images{more}", fill="black", font=font)
    limit = max(4, thumb_size // 6)
    for k, member in enumerate(shown):
        x = pad + (k % across) * cell_w
        y = header + (k // across) * cell_h
        try:
            thumb = open_rgb(member["path"], draft_size=thumb_size)
            thumb.thumbnail((thumb_size, thumb_size), Image.Resampling.LANCZOS)
            sheet.paste(thumb, (x + (thumb_size - thumb.width) // 2, y + (thumb_size - thumb.height) // 2))
        except (BadImageError, TypeError, OSError):
            draw.rectangle([x, y, x + thumb_size - 1, y + thumb_size - 1], fill=(220, 220, 220))
            draw.text((x + 6, y + thumb_size // 2 - 6), "unreadable", fill="black", font=font)
        name = str(member["image_id"])
        name = name if len(name) <= limit else "…" + name[-(limit - 1):]
        draw.text((x, y + thumb_size + 2), name, fill="black", font=font)
    return sheet

