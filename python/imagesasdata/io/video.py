"""Reading video files as frames (the book's section 1.2: video is a sequence of images), with PyAV (FFmpeg's
libraries, bundled in its wheel: every container and codec users meet, nothing to install on the system).

sample_frames() decodes a video once, front to back, and keeps a frame every N seconds, or at each scene change
(a frame whose small grey thumbnail differs from the last kept one by more than a threshold), with its timestamp
in seconds from the start of the stream. A file that cannot be opened or decoded raises BadVideoError; a video
that breaks part-way keeps the frames decoded before the break and says where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadImageError, ImagesAsDataError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".3gp", ".ts", ".mts", ".ogv"})
SCENE_THUMBNAIL = (64, 36)


class BadVideoError(BadImageError):
    """One video that cannot be used; long runs record it and carry on."""


@dataclass
class Frame:
    timestamp: float            # seconds from the start of the stream
    frame_number: int           # position among the stream's decoded frames (0 = first)
    image: object               # Pillow RGB image


@dataclass
class VideoFrames:
    """The frames kept from one video, and what is known about the video."""

    frames: list = field(default_factory=list)
    duration: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    decoded: int = 0             # frames decoded (kept or not)
    stopped: str | None = None   # why decoding stopped before the end (damaged data), or None


def is_video_file(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_video_files(folder) -> list[Path]:
    """Video files under `folder` (recursively, hidden files and folders skipped), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / name for name in sorted(files) if not name.startswith(".") and is_video_file(name)]
    return sorted(found)


def _av():
    try:
        import av
    except ImportError:
        raise ImagesAsDataError("video needs PyAV: pip install av (or 'imagesasdata[beyond]'); its wheels bundle "
                                "FFmpeg", what="missing_extra", extra="beyond") from None
    return av


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two grey thumbnails, 0 (same) to 1 (black against white)."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)


def sample_frames(path, *, every: float | None = 1.0, scene_threshold: float | None = None,
                  max_frames: int | None = None) -> VideoFrames:
    """Decode `path` and keep frames: one every `every` seconds (the first frame at or after 0, every, 2·every, …),
    or, with scene_threshold (0–1), each frame whose content differs from the last kept frame's by more than the
    threshold (mean absolute difference of 64×36 grey thumbnails; 0.1–0.3 finds cuts) — the first frame always.
    Both may be given: a frame is kept when either rule keeps it. max_frames: stop after keeping this many.
    Raises BadVideoError when the file cannot be opened or holds no decodable video frame.
    """
    from ..io.images import path_text, unusable_file

    av = _av()
    problem = unusable_file(Path(path))
    if problem:
        raise BadVideoError(path_text(path), problem)
    if every is None and scene_threshold is None:
        raise ImagesAsDataError("give every= (seconds between frames) or scene_threshold= (0–1), or both")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as error:
        raise BadVideoError(path, f"not a video FFmpeg can open ({_reason(error)})") from None
    result = VideoFrames()
    with container:
        if not container.streams.video:
            raise BadVideoError(path, "holds no video stream (audio only, or not a video)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        result.fps = float(stream.average_rate) if stream.average_rate else None
        result.width, result.height = stream.codec_context.width or None, stream.codec_context.height or None
        result.codec = stream.codec_context.name
        if stream.duration is not None and stream.time_base is not None:
            result.duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            result.duration = container.duration / 1_000_000
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None and stream.time_base else 0.0
        next_time, last_thumbnail, last_time, capped = 0.0, None, None, False
        try:
            for frame in container.decode(stream):
                number = result.decoded
                result.decoded += 1
                if frame.pts is not None and frame.time_base is not None:
                    timestamp = float(frame.pts * frame.time_base) - start
                elif result.fps:
                    timestamp = number / result.fps
                else:
                    timestamp = float(number)
                last_time = timestamp
                keep = False
                if every is not None and timestamp >= next_time - 1e-6:
                    keep = True
                    while next_time <= timestamp + 1e-6:
                        next_time += every
                thumbnail = None
                if scene_threshold is not None:
                    thumbnail = np.asarray(frame.to_image().convert("L").resize(SCENE_THUMBNAIL))
                    if last_thumbnail is None or _difference(thumbnail, last_thumbnail) > scene_threshold:
                        keep = True
                if not keep:
                    continue
                image = frame.to_image().convert("RGB")
                if scene_threshold is not None:
                    last_thumbnail = thumbnail
                result.frames.append(Frame(round(timestamp, 6), number, image))
                if max_frames is not None and len(result.frames) >= max_frames:
                    capped = True
                    break
        except (av.error.FFmpegError, OSError, ValueError) as error:
            if not result.frames:
                raise BadVideoError(path, f"damaged video data: no frame could be decoded ({_reason(error)})") from None
            last = result.frames[-1].timestamp
            result.stopped = f"damaged video data after {last:.2f} s ({_reason(error)}); the frames before it are kept"
    if not result.frames:
        raise BadVideoError(path, "no video frame could be decoded (an empty or damaged stream)")
    if not capped and result.stopped is None and result.duration and result.fps and last_time is not None:
        # FFmpeg ends a cut-off file quietly: compare where the frames end with the length its header states.
        end = last_time + 1.0 / result.fps
        if end < result.duration - max(0.5, 2.0 / result.fps):
            result.stopped = (f"the frames end at {end:.2f} s of the {result.duration:.2f} s the file states (a "
                              "truncated or damaged file?); the frames before are kept")
    if result.duration is None and result.fps and result.decoded:
        result.duration = result.decoded / result.fps
    return result


def _reason(error) -> str:
    text = str(getattr(error, "strerror", None) or error).strip()
    return text or type(error).__name__
