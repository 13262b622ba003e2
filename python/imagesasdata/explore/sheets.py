"""A contact sheet per cluster: the images of each k-means cluster on one picture, the most typical first, so a
person can say what the cluster is (the exploratory reading the book describes in section 1.2)."""

from __future__ import annotations

import pyarrow as pa

from ..errors import ImagesAsDataError, listing, setting
from ..io.locks import claimed_directory
from ..io.sheets import Layout, Line, Tile, contact_picture, save_picture
from ..io.tables import to_arrow, write_json

SHEETS_DESCRIPTION = "sheets.json"
CLUSTER_LAYOUT = Layout(pad=6, caption=16, header=24, heading_y=5, min_width=240)


def cluster_sheets(clusters, out, *, per_cluster: int = 24, columns: int = 8, thumb_size: int = 112,
                   overwrite: bool = False) -> pa.Table:
    """Write cluster-NN.png into the new folder `out`, one contact sheet per cluster of embedding_clusters(): up to
    per_cluster images, nearest the centre first, each captioned with its image_id.

    Returns cluster, cluster_size, shown (images drawn) and sheet (the PNG's path). overwrite=True replaces the
    sheets of an earlier call in `out`. Unreadable images are drawn as grey squares marked "unreadable".
    Raises ImagesAsDataError for a table that is not embedding_clusters()'s, a bad per_cluster, columns or
    thumb_size, or an `out` that already holds sheets (without overwrite=True).
    """
    table = to_arrow(clusters)
    missing = [c for c in ("image_id", "path", "cluster", "rank") if c not in table.column_names]
    if missing:
        raise ImagesAsDataError(f"the clusters table lacks {listing(missing)}; pass the result of embedding_clusters()")
    for name, value, low in (("per_cluster", per_cluster, 1), ("columns", columns, 1), ("thumb_size", thumb_size, 16)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ImagesAsDataError(f"{setting(name, value)}: use a whole number of at least {low}",
                                    what="option", option=name, value=value)
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
            save_picture(_sheet(cluster, members, per_cluster, columns, thumb_size), target, "contact sheet")
            written.append({"cluster": cluster, "cluster_size": len(members),
                            "shown": min(len(members), per_cluster), "sheet": str(target)})
        write_json({"format": "imagesasdata-cluster-sheets", "status": "complete", "clusters": len(by_cluster),
                    "per_cluster": per_cluster}, folder / SHEETS_DESCRIPTION)
    return pa.Table.from_pylist(written, schema=pa.schema([("cluster", pa.int32()), ("cluster_size", pa.int32()),
                                                           ("shown", pa.int32()), ("sheet", pa.string())]))


def _sheet(cluster: int, members: list, per_cluster: int, columns: int, thumb_size: int):
    shown = members[:per_cluster]
    more = f" (the {len(shown)} nearest its centre shown)" if len(members) > len(shown) else ""
    tiles = [Tile(member["path"], str(member["image_id"])) for member in shown]
    return contact_picture(f"cluster {cluster}: {len(members)} images{more}", [Line(tiles)], thumb_size=thumb_size,
                           columns=columns, layout=CLUSTER_LAYOUT)
