"""Per-video statistics from labelled frames (infer/video.py): how much of a video shows something, when it first
appears, and its longest unbroken stretch — the quantities studies of televised debates, campaign ads and protest
footage report."""

from __future__ import annotations

import math

import pyarrow as pa

from ..errors import ImagesAsDataError, check_number

SUMMARY_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("label", pa.string()),
    ("frames", pa.int64()),             # sampled frames carrying the label
    ("frames_total", pa.int64()),       # sampled frames of the video
    ("share", pa.float64()),            # frames / frames_total
    ("first_seen", pa.float64()),       # seconds: the first frame carrying the label (null if none)
    ("last_seen", pa.float64()),
    ("longest_run", pa.float64()),      # seconds covered by the longest run of consecutive frames carrying it
    ("runs", pa.int64()),               # separate appearances (runs of consecutive frames)
    ("error", pa.string()),
])


def video_summary(labels, *, label_column: str | None = None, min_confidence: float = 0.0) -> pa.Table:
    """Summarise labelled frames per video × label.

    labels: a label_video() table (or frames joined with predictions or tags yourself): video_id, frame_id,
      timestamp and a label column — `predicted` (a run: one label per frame; every class gets a row, seen or
      not) or `label` (a tagger: several per frame, kept at or above min_confidence on its `confidence` column).
    Each sampled frame stands for the time until the next one (the last until the video's duration), so
    longest_run is in seconds of video, not a count of frames.
    Returns video_id, label, frames, frames_total, share, first_seen, last_seen, longest_run, runs, error (a video
    that could not be read is one row with its error).
    """
    from ..io.tables import to_arrow

    table = to_arrow(labels)
    names = table.column_names
    column = label_column or ("predicted" if "predicted" in names else "label" if "label" in names else None)
    if column is None or column not in names:
        raise ImagesAsDataError(f"no label column{f' {label_column!r}' if label_column else ''} in the table (columns: "
                                f"{', '.join(names)}); pass label_video()'s result, or name it with label_column=")
    for needed in ("video_id", "frame_id", "timestamp"):
        if needed not in names:
            raise ImagesAsDataError(f"the table lacks column {needed!r}; pass label_video()'s result")
    min_confidence = check_number("min_confidence", min_confidence, 0, 100)
    confidence = "confidence" if "confidence" in names and column != "predicted" else None
    classes = [n[len("prob_"):] for n in names if n.startswith("prob_")] if column == "predicted" else []
    videos: dict = {}
    for row in table.to_pylist():
        video = videos.setdefault(row["video_id"], {"frames": {}, "duration": None, "error": None, "labels": set()})
        if row.get("duration") is not None:
            video["duration"] = row["duration"]
        if row["frame_id"] is None:
            if row.get("error") and not video["frames"]:
                video["error"] = row["error"]
            continue
        labels_of_frame = video["frames"].setdefault(row["frame_id"], (row["timestamp"], set()))[1]
        value = row[column]
        if value is None:
            continue
        if confidence and (row[confidence] is None or row[confidence] < min_confidence):
            continue
        labels_of_frame.add(str(value))
        video["labels"].add(str(value))
    rows = []
    for video_id, video in videos.items():
        if not video["frames"]:
            rows.append({"video_id": video_id, "error": video["error"] or "no frame"})
            continue
        frames = sorted(video["frames"].values())
        times = [t for t, _ in frames]
        ends = times[1:] + [_video_end(times, video["duration"])]
        for label in sorted(set(classes) | video["labels"]):
            carrying = [label in found for _, found in frames]
            count = sum(carrying)
            seen = [t for t, has in zip(times, carrying) if has]
            longest, runs, start = 0.0, 0, None
            for i, has in enumerate(carrying):
                if has and start is None:
                    start, runs = i, runs + 1
                if has:
                    longest = max(longest, ends[i] - times[start])
                else:
                    start = None
            rows.append({"video_id": video_id, "label": label, "frames": count, "frames_total": len(frames),
                         "share": count / len(frames), "first_seen": seen[0] if seen else None,
                         "last_seen": seen[-1] if seen else None, "longest_run": longest, "runs": runs})
    return pa.Table.from_pylist([{n: r.get(n) for n in SUMMARY_SCHEMA.names} for r in rows], schema=SUMMARY_SCHEMA)


def _video_end(times, duration) -> float:
    """Where the last sampled frame's stretch ends: the video's duration, else one typical step after it."""
    steps = sorted(b - a for a, b in zip(times, times[1:]) if b > a)
    step = steps[len(steps) // 2] if steps else 0.0
    if duration is not None and not math.isnan(duration) and duration > times[-1]:
        return float(duration)
    return times[-1] + step
