"""What every autotagger does first: turn the user's images into a table, hash each file, check the options."""

from __future__ import annotations

import pyarrow as pa

from ..io.images import sha256_file, unusable_file


def image_inputs(images) -> pa.Table:
    """An image_table() (image_id, path, …) from a folder, a list of files, a table or data frame; as is if it is one."""
    from ..data.table import image_table

    if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names):
        return images
    return image_table(images)


def hash_files(paths) -> tuple[list, dict]:
    """SHA-256 of every file (None where unreadable) and {position: reason} for the unreadable ones.

    The hash is an image's identity: duplicates are asked about once, and cached answers are found by it.
    """
    from ..io.threads import map_in_threads

    def digest(path):
        problem = unusable_file(path)
        if problem:
            return None, problem
        try:
            return sha256_file(path), None
        except OSError as error:
            return None, f"cannot be read ({error.strerror or error})"

    results = map_in_threads(digest, paths)
    return [sha for sha, _ in results], {i: reason for i, (_, reason) in enumerate(results) if reason}
