"""Video as frames (the book's section 1.2): sample frames from video files, label them with a fitted run or any
tagger, and summarise per video (measure/video.py: share of frames, first appearance, longest run).

    video_frames(videos, out=...)       frames written as JPEG files: one row per frame (video_id, timestamp, path)
    label_video(model, videos, out=...) the frames labelled by a run (predict()) or a tagger (a function such as
                                        autotag_local), one table
    video_summary(labels)               per video × label (imagesasdata.measure.video)

A video that cannot be read is a row with its error and no frame; one that breaks part-way keeps its frames and
adds a row saying where it stopped. The run goes on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from ..errors import ImagesAsDataError, check_number
from ..io.images import path_text
from ..io.tables import to_arrow, write_json, write_table
from ..io.video import BadVideoError, list_video_files, sample_frames

FRAMES_DESCRIPTION = "frames.json"
FRAME_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("video_path", pa.string()),
    ("frame_id", pa.int32()),                 # 1 = the first kept frame
    ("timestamp", pa.float64()),              # seconds from the start
    ("frame_number", pa.int64()),             # position among all the video's frames (0 = first)
    ("image_id", pa.string()),                # <video_id>/frame<frame_id>: what predict() and taggers return
    ("path", pa.string()),                    # the frame's JPEG file
    ("duration", pa.float64()), ("fps", pa.float64()),
    ("error", pa.string()),
])


def video_table(videos) -> pa.Table:
    """video_id, path for a folder of videos, a video file, a list of files, or a table with a path column."""
    from ..data.table import PATH_COLUMN_GUESSES, absolute_path, written_id

    if isinstance(videos, (str, os.PathLike)) and Path(videos).is_dir():
        folder = Path(videos)
        files = list_video_files(folder)
        if not files:
            raise ImagesAsDataError(f"{folder}: no video files found (looked for {', '.join(sorted(_extensions()))})",
                                    what="file", path=folder)
        return pa.table({"video_id": pa.array([path_text(f.relative_to(folder).as_posix()) for f in files], pa.string()),
                         "path": pa.array([absolute_path(f) for f in files], pa.string())})
    if isinstance(videos, (str, os.PathLike)) and not str(videos).lower().endswith((".csv", ".tsv", ".parquet", ".pq")):
        videos = [videos]
    if isinstance(videos, (list, tuple)):
        if not videos:
            raise ImagesAsDataError("no video paths given")
        paths = [absolute_path(v) for v in videos]
        ids = [written_id(v) for v in videos]   # as image_table(): the path as written, the same in any call
        return pa.table({"video_id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string())})
    table = to_arrow(videos)
    column = next((c for c in ("video_path", *PATH_COLUMN_GUESSES) if c in table.column_names), None)
    if column is None:
        raise ImagesAsDataError(f"no path column in the videos table (columns: {', '.join(table.column_names)})")
    paths = [absolute_path(p) for p in table[column].to_pylist()]
    ids = [str(v) for v in table["video_id"].to_pylist()] if "video_id" in table.column_names \
        else [written_id(p) for p in table[column].to_pylist()]
    return pa.table({"video_id": pa.array(ids, pa.string()), "path": pa.array(paths, pa.string())})


def _extensions():
    from ..io.video import VIDEO_EXTENSIONS

    return VIDEO_EXTENSIONS


def video_frames(videos, out=None, *, every: float | None = 1.0, scene_threshold: float | None = None,
                 max_frames: int | None = None, overwrite: bool = False, progress: bool = True) -> pa.Table:
    """Sample frames from video files and write them as JPEG files: one row per frame.

    videos: a folder (searched recursively for .mp4, .mov, .avi, .mkv, .webm, …), a video file, a list of files,
      or a table with a path (or video_path) column and optionally video_id.
    out: the folder for the frames (default: a new temporary folder); frames go to <out>/<video>/ and the table
      to <out>/frames.parquet. The folder is locked while it is written; an existing one is replaced only with
      overwrite=True.
    every: seconds between kept frames (the first frame at or after 0, every, 2·every, …); None to keep only
      scene changes. scene_threshold: also keep each frame that differs from the last kept one by more than this
      (0–1; 0.1–0.3 finds cuts). max_frames: at most this many frames per video.
    Returns columns video_id, video_path, frame_id, timestamp (seconds), frame_number, image_id, path, duration,
    fps, error. A video that cannot be read is one row with its error and no frame; one that breaks part-way keeps
    its frames and adds a row (no frame) saying where it stopped.
    """
    from ..io.locks import claimed_directory

    settings = _frame_settings(every, scene_threshold, max_frames)
    table = video_table(videos)
    with claimed_directory(out, what="video frames", marker=FRAMES_DESCRIPTION, resume=False, overwrite=overwrite,
                           option_hint="overwrite=True (CLI: --overwrite)") as folder:
        return _write_frames(table, folder, settings, progress)


def _frame_settings(every, scene_threshold, max_frames) -> dict:
    if every is not None:
        every = check_number("every", every, 0.001)
    if scene_threshold is not None:
        scene_threshold = check_number("scene_threshold", scene_threshold, 0, 1)
    if every is None and scene_threshold is None:
        raise ImagesAsDataError("give every= (seconds between frames) or scene_threshold= (0–1), or both")
    if max_frames is not None:
        max_frames = int(check_number("max_frames", max_frames, 1, None, integer=True))
    return {"format": "imagesasdata.video_frames/1", "every": every, "scene_threshold": scene_threshold,
            "max_frames": max_frames}


def _write_frames(table: pa.Table, folder: Path, settings: dict, progress: bool) -> pa.Table:
    """Sample every video of `table` into the claimed `folder`; frames.parquet and frames.json last."""
    from tqdm.auto import tqdm

    from ..io.tables import atomic_path

    rows = []
    write_json(dict(settings, status="writing"), folder / FRAMES_DESCRIPTION)
    with tqdm(total=table.num_rows, desc="videos", unit="video", disable=not progress, leave=False) as bar:
        for number, (video_id, path) in enumerate(zip(table["video_id"].to_pylist(), table["path"].to_pylist())):
            bar.update(1)
            base = {"video_id": video_id, "video_path": path}
            try:
                sampled = sample_frames(path, every=settings["every"], scene_threshold=settings["scene_threshold"],
                                        max_frames=settings["max_frames"])
            except BadVideoError as error:
                rows.append(dict(base, error=error.reason))
                continue
            subfolder = folder / f"{number + 1:05d}_{_safe(video_id)}"
            subfolder.mkdir(parents=True, exist_ok=True)
            for k, frame in enumerate(sampled.frames, start=1):
                target = subfolder / f"frame{k:06d}_{frame.timestamp:010.3f}s.jpg"
                with atomic_path(target) as temporary:
                    frame.image.save(temporary, format="JPEG", quality=92)
                rows.append(dict(base, frame_id=k, timestamp=frame.timestamp, frame_number=frame.frame_number,
                                 image_id=f"{video_id}/frame{k:06d}", path=str(target), duration=sampled.duration,
                                 fps=sampled.fps))
            if sampled.stopped:
                rows.append(dict(base, duration=sampled.duration, fps=sampled.fps, error=sampled.stopped))
    result = pa.Table.from_pylist([{n: r.get(n) for n in FRAME_SCHEMA.names} for r in rows], schema=FRAME_SCHEMA)
    write_table(result, folder / "frames.parquet")
    write_json(dict(settings, videos=table.num_rows, frames=sum(1 for r in rows if r.get("path")), status="complete"),
               folder / FRAMES_DESCRIPTION)
    return result


def _safe(text: str) -> str:
    import re

    return (re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "video")[-80:]


def label_video(model, videos, out=None, *, every: float | None = 1.0, scene_threshold: float | None = None,
                max_frames: int | None = None, overwrite: bool = False, progress: bool = True,
                **options) -> pa.Table:
    """Sample frames (video_frames()) and label each one.

    model: a fitted Run or run directory (each frame gets predicted and prob_<class> columns, via predict()); or a
      tagger, any function that takes a table of image_id and path and returns a table with image_id — e.g.
      imagesasdata.autotag_local or a lambda around rekognition_labels (one row per frame × label).
    options: passed to predict() or to the tagger (batch_size, device, min_confidence, …).
    Returns the frames table (video_id, video_path, frame_id, timestamp, …) joined with the labels, also written
    to <out>/labels.parquet; videos that failed keep their rows with the error. Summarise it with
    video_summary().
    """
    from ..io.locks import claimed_directory

    settings = _frame_settings(every, scene_threshold, max_frames)
    table = video_table(videos)
    # The folder stays claimed until the labels are written too: no other job can write into it meanwhile.
    with claimed_directory(out, what="video frames", marker=FRAMES_DESCRIPTION, resume=False, overwrite=overwrite,
                           option_hint="overwrite=True (CLI: --overwrite)") as folder:
        frames = _write_frames(table, folder, settings, progress)
        labels = _label_frames(model, frames, progress, options)
        if labels is not None:
            write_table(labels, folder / "labels.parquet")
    return frames if labels is None else labels


def _label_frames(model, frames: pa.Table, progress: bool, options: dict):
    import pyarrow.compute as pc

    usable = frames.filter(pc.invert(pc.is_null(frames["path"])))
    if usable.num_rows == 0:
        return None
    images = usable.select(["image_id", "path"])
    if callable(model) and not isinstance(model, (str, os.PathLike)) and not hasattr(model, "description"):
        import inspect

        try:
            takes_progress = "progress" in inspect.signature(model).parameters
        except (TypeError, ValueError):
            takes_progress = False
        labels = to_arrow(model(images, **(dict(options, progress=progress) if takes_progress else options)))
        if "image_id" not in labels.column_names:
            raise ImagesAsDataError("the tagger's table has no image_id column; label_video() needs it to join the "
                                    "labels to the frames")
    else:
        from .predict import predict

        labels = predict(model, images, progress=progress, **options)
    labels = labels.drop_columns([c for c in ("path",) if c in labels.column_names])
    joined = _join_labels(frames, labels)
    # Table order of the videos, then frame order (a video's note on where it stopped comes last).
    position = {video_id: k for k, video_id in enumerate(dict.fromkeys(frames["video_id"].to_pylist()))}
    frame_ids, video_ids = joined["frame_id"].to_pylist(), joined["video_id"].to_pylist()
    order = sorted(range(joined.num_rows), key=lambda i: (position[video_ids[i]], frame_ids[i] is None,
                                                           frame_ids[i] or 0))
    return joined.take(pa.array(order, pa.int64()))


def _join_labels(frames: pa.Table, labels: pa.Table) -> pa.Table:
    """Frames left-joined with labels on image_id (several label rows per frame allowed; list columns too, which
    Arrow's own join refuses). Frames without a label row keep one row with null label columns."""
    where = {image_id: i for i, image_id in enumerate(frames["image_id"].to_pylist()) if image_id is not None}
    label_rows = [(k, where[image_id]) for k, image_id in enumerate(labels["image_id"].to_pylist()) if image_id in where]
    right = labels.drop_columns(["image_id"])
    right = right.rename_columns([f"label_{c}" if c in frames.column_names else c for c in right.column_names])
    matched = frames.take(pa.array([f for _, f in label_rows], pa.int64()))
    for name, column in zip(right.column_names, right.take(pa.array([k for k, _ in label_rows], pa.int64())).columns):
        matched = matched.append_column(name, column)
    labelled = {f for _, f in label_rows}
    rest = frames.take(pa.array([i for i in range(frames.num_rows) if i not in labelled], pa.int64()))
    for field in right.schema:
        rest = rest.append_column(field, pa.nulls(rest.num_rows, field.type))
    return pa.concat_tables([matched, rest])
