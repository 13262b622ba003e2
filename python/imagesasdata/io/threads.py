"""Work on a thread pool: reading and decoding files releases the GIL, so threads keep the cores busy without the
cost of processes. Nothing here imports torch (corpus preparation uses it before any model exists)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def map_in_threads(work, items, *, workers: int | None = None, desc: str | None = None,
                   progress: bool = False) -> list:
    """[work(item) for item in items], in order, on a thread pool (file reads and Pillow release the GIL), with a
    progress bar when asked."""
    from tqdm.auto import tqdm

    items = list(items)
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool, \
            tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        results = []
        for result in pool.map(work, items):
            results.append(result)
            bar.update(1)
    return results
