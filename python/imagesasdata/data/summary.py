"""The book's Table 7.1 in one call: how many images each task has, by class and by split.

A task's images are counted in the splits a fit will use: the data's own (the book's train/ val/ test/ folders, a
split column), or, for data not yet split, the stratified seeded split finetune() and tune() draw with the same
val_fraction, test_fraction and seed — so the table describes the data exactly as the models will see them.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from ..errors import ImagesAsDataError
from .splits import choose_test_fraction, split_table
from .table import check_labeled, image_table, order_classes

SPLITS = ("train", "val", "test")


def data_summary(tasks, *, label: str | None = None, path: str | None = None, val_fraction: float = 0.2,
                 test_fraction: float | None = None, seed: int = 0, balance: bool = False) -> pa.Table:
    """Return one row per task and class: task, class, train, val, test, total (image counts), share (the class's
    share of the task's images), split_source ("given" or "drawn") and no_test (why the task has no test split, or
    null).

    tasks: {name: data} for several tasks (e.g. {"protest": ..., "legend": ...}), or one task's data, named "task";
      data is anything image_table() reads. label, path: the columns of table data (the same for every task).
    val_fraction, test_fraction, seed, balance: as finetune() (test_fraction None: 0.1 when every class has at
      least 20 images), used only for data not already split.
    Raises ImagesAsDataError for tasks without labelled images, naming the task.
    """
    if not isinstance(tasks, dict):
        tasks = {"task": tasks}
    if not tasks:
        raise ImagesAsDataError("data_summary() needs at least one task, e.g. {'protest': 'protest/'}")
    rows = []
    for name, data in tasks.items():
        try:
            table = image_table(data, label=label, path=path)
            classes = order_classes(check_labeled(table))
        except ImagesAsDataError as error:
            raise ImagesAsDataError(f"task {name!r}: {error}") from None
        given = all(s is not None for s in table["split"].to_pylist())
        fraction, no_test = choose_test_fraction(table, test_fraction, val_fraction, balance)
        table = split_table(table, val_fraction=val_fraction, test_fraction=fraction, seed=seed, balance=balance)
        counts = Counter(zip(table["label"].to_pylist(), table["split"].to_pylist()))
        total = sum(counts.values())
        for cls in classes:
            by_split = {split: counts.get((cls, split), 0) for split in SPLITS}
            images = sum(by_split.values())
            rows.append({"task": str(name), "class": cls, **by_split, "total": images,
                         "share": images / total if total else None,
                         "split_source": "given" if given else "drawn", "no_test": no_test})
    schema = pa.schema([("task", pa.string()), ("class", pa.string()), ("train", pa.int64()), ("val", pa.int64()),
                        ("test", pa.int64()), ("total", pa.int64()), ("share", pa.float64()),
                        ("split_source", pa.string()), ("no_test", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)
