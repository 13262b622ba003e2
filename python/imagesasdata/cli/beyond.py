"""Verbs beyond one label per image: faces, face-crops, classify-faces, ocr, moderation-local,
rekognition-moderation, screen, video-frames, label-video, video-summary, share, rejoin."""

from __future__ import annotations

import argparse

from .common import print_table


def add_commands(subparsers) -> None:
    from .autotag import _rekognition_options

    def verb(name, help_text, description, epilog=None):
        return subparsers.add_parser(name, help=help_text, description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)

    faces = verb("faces", "find the faces in images (MTCNN, offline): one row per face",
                 "Find faces with MTCNN (facenet-pytorch's shipped weights): one row per face with its box, score and "
                 "landmarks; an image without a face is a row with no face.",
                 "example:\n  imagesasdata faces tweets/ --out faces.parquet --counts counts.csv")
    _images(faces)
    faces.add_argument("--out", required=True, help="FILE.parquet (landmarks are a list column)")
    faces.add_argument("--counts", help="also write faces per image to FILE.csv or FILE.parquet")
    _detector_options(faces)
    faces.set_defaults(handler=run_faces)

    crops = verb("face-crops", "crop and align faces into files: training data for finetune",
                 "Detect, align and crop faces into PNG files (class folders kept), with a table for finetune "
                 "(--group source_image_id keeps an image's faces in one split).",
                 "example:\n  imagesasdata face-crops politicians/ --out crops/ --largest-only\n"
                 "  imagesasdata finetune crops/faces.parquet --group source_image_id --out runs/politicians")
    _images(crops)
    crops.add_argument("--out", required=True, help="folder for the crops (and faces.parquet, skipped.parquet)")
    crops.add_argument("--size", type=int, default=160, help="side of each crop in pixels (default: 160)")
    _crop_options(crops)
    crops.add_argument("--largest-only", action="store_true", help="one crop per image: its largest face")
    crops.add_argument("--label", help="label column of a table of images")
    crops.add_argument("--overwrite", action="store_true", help="replace crops already in --out")
    _detector_options(crops)
    crops.set_defaults(handler=run_face_crops)

    classify = verb("classify-faces", "a fitted run on every face; counts per image",
                    "Apply a fitted run to every face of every image (cropped in memory) and aggregate per image: "
                    "faces, faces_<class>, any_<class>, all_<class>.")
    classify.add_argument("run", help="run directory (fitted on face crops)")
    _images(classify)
    classify.add_argument("--out", required=True, help="per-image table FILE.csv or FILE.parquet")
    classify.add_argument("--faces-out", help="also write the per-face table to FILE.csv or FILE.parquet")
    _crop_options(classify)
    _detector_options(classify)
    classify.set_defaults(handler=run_classify_faces)

    ocr = verb("ocr", "read the text in images (Tesseract, offline): one text per image",
               "Read the text in images with Tesseract: one row per image (text in reading order), and optionally "
               "one row per word with its box.",
               "example:\n  imagesasdata ocr memes/ --languages eng+deu --out text.csv --words words.parquet")
    _images(ocr)
    ocr.add_argument("--out", required=True, help="per-image text FILE.csv or FILE.parquet")
    ocr.add_argument("--words", help="also write the words with their boxes to FILE.csv or FILE.parquet")
    ocr.add_argument("--languages", default="eng", help="Tesseract language codes, e.g. eng, deu, eng+deu (default: eng)")
    ocr.add_argument("--language-column", help="a column of the images table giving each image's languages")
    ocr.add_argument("--layout", default="auto", help="auto, sparse, block, line or word (default: auto)")
    ocr.add_argument("--readings", default="original",
                     help="comma-separated: original, inverted, bright (memes' white letters) (default: original)")
    ocr.add_argument("--min-confidence", type=float, default=50.0, help="drop words below this confidence (0-100)")
    ocr.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    ocr.set_defaults(handler=run_ocr)

    local = verb("moderation-local", "flag sexual content and weapons offline (NudeNet, ImageNet weapons)",
                 "Moderation labels computed on this machine: NudeNet (exposed or covered intimate body parts) and "
                 "the ImageNet weapon categories (a violence proxy). Nothing leaves the machine; nothing is deleted.")
    _images(local)
    local.add_argument("--out", required=True, help="FILE.parquet (boxes are a struct column)")
    local.add_argument("--detectors", default="nudity,weapons", help="comma-separated: nudity, weapons")
    local.add_argument("--min-confidence", type=float, default=50.0, help="drop labels below this confidence (0-100)")
    local.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    local.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    local.set_defaults(handler=run_moderation_local)

    cloud = verb("rekognition-moderation", "moderation labels from Amazon Rekognition (cached, resumable)",
                 "Amazon Rekognition DetectModerationLabels: one row per image x label, with the response cache and "
                 "dry run of every Rekognition call (never pay twice).")
    _images(cloud)
    cloud.add_argument("--out", help="FILE.parquet; required unless --dry-run")
    cloud.add_argument("--min-confidence", type=float, default=50.0, help="labels below this are not returned")
    _rekognition_options(cloud)
    cloud.set_defaults(handler=run_rekognition_moderation)

    screen = verb("screen", "flag images to hold back from annotators; blurred sheet, coding sheet",
                  "Turn moderation labels into flags, a contact sheet with flagged images blurred, and a coding sheet "
                  "that leaves flagged images out. Nothing is deleted.",
                  "example:\n  imagesasdata screen tags.parquet --out screen.parquet --sheet screen.png "
                  "--coding-sheet coding.csv --variables protest,crowd")
    screen.add_argument("tags", nargs="+", help="moderation tables (moderation-local, rekognition-moderation)")
    screen.add_argument("--out", required=True, help="the screen: FILE.parquet (reasons are a list column)")
    screen.add_argument("--min-confidence", type=float, default=50.0, help="a label at or above this flags its image")
    screen.add_argument("--categories", help="comma-separated top-level categories that flag (default: any)")
    screen.add_argument("--sheet", help="write the blurred contact sheet to FILE.png")
    screen.add_argument("--coding-sheet", help="write the coding sheet to FILE.csv")
    screen.add_argument("--variables", default="label", help="comma-separated columns for coders (default: label)")
    screen.add_argument("--show-flagged", action="store_true", help="keep flagged images in the coding sheet, with a warning")
    screen.set_defaults(handler=run_screen)

    frames = verb("video-frames", "sample frames from videos (PyAV): one row per frame",
                  "Sample frames every N seconds and/or at scene changes, written as JPEG files with their timestamps.",
                  "example:\n  imagesasdata video-frames ads/ --out frames/ --every 2")
    frames.add_argument("videos", nargs="+", help="video files or folders")
    frames.add_argument("--out", required=True, help="folder for the frames and frames.parquet")
    _video_options(frames)
    frames.set_defaults(handler=run_video_frames)

    label = verb("label-video", "sample and label video frames with a run or the local tagger",
                 "Sample frames and label each with a fitted run (or --tagger local: the offline ImageNet tagger); "
                 "--summary writes the per-video summary.")
    label.add_argument("run", nargs="?", help="run directory (omit with --tagger local)")
    label.add_argument("videos", nargs="+", help="video files or folders")
    label.add_argument("--out", required=True, help="folder for the frames and labels.parquet")
    label.add_argument("--tagger", choices=["local"], help="label with the offline ImageNet tagger instead of a run")
    label.add_argument("--summary", help="also write video_summary to FILE.csv or FILE.parquet")
    _video_options(label)
    label.set_defaults(handler=run_label_video)

    summary = verb("video-summary", "per video x label: share of frames, first appearance, longest run",
                   "Summarise labelled frames (label-video's labels.parquet) per video and label.")
    summary.add_argument("labels", help="labels.parquet written by label-video")
    summary.add_argument("--out", help="FILE.csv or FILE.parquet (default: print)")
    summary.add_argument("--min-confidence", type=float, default=0.0, help="for tagger labels: only at or above this")
    summary.set_defaults(handler=run_video_summary)

    share = verb("share", "share labels without the pictures: ids, hashes, labels, a datasheet",
                 "Write identifiers, SHA-256 hashes and labels (no pixels, no local paths) with a datasheet. Shared: "
                 "image_id, image_sha256, the engine's label, prediction (prob_*), split, error, face, OCR, tagger "
                 "and video columns, and those named in --columns; local paths in any text become file names.",
                 "example:\n  imagesasdata share labels.parquet --run runs/protest --out shared/ --sources 'tweets, 2019' "
                 "--answer copyright='Twitter users; not redistributable'")
    share.add_argument("labels", help="a table of images with a path column (predict, label, coding sheets)")
    share.add_argument("--out", required=True, help="folder to write")
    share.add_argument("--run", help="the run whose labels these are (metrics with intervals go in the datasheet)")
    share.add_argument("--title", help="a title for the datasheet")
    share.add_argument("--sources", help="where the images came from, when, and how they were selected")
    share.add_argument("--answer", action="append", default=[], metavar="QUESTION=TEXT",
                       help="answer a section-8 question: copyright, privacy, annotators, representation, access, "
                            "intended_use (repeat)")
    share.add_argument("--no-ids", action="store_true", help="leave image_id out (file names can identify people)")
    share.add_argument("--columns", help="more columns to share, comma-separated (e.g. your own codes: "
                                         "protest,violence); other columns are left out, paths always")
    share.add_argument("--drop", help="columns to leave out although shared by default, comma-separated")
    share.add_argument("--overwrite", action="store_true", help="replace a shared corpus already in --out")
    share.set_defaults(handler=run_share)

    rejoin = verb("rejoin", "match a shared corpus to your copy of the images by SHA-256",
                  "Re-join shared labels to your own copy of the images by hash.")
    rejoin.add_argument("shared", help="a folder written by share")
    _images(rejoin)
    rejoin.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")
    rejoin.set_defaults(handler=run_rejoin)


def _images(parser) -> None:
    parser.add_argument("images", nargs="+", help="image files, folders, or a CSV/Parquet table with a path column")


def _detector_options(parser) -> None:
    parser.add_argument("--min-face-size", type=int, default=20, help="smallest face searched for, pixels (default: 20)")
    parser.add_argument("--threshold", type=float, default=0.9, help="detector score a face needs, 0-1 (default: 0.9)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _crop_options(parser) -> None:
    parser.add_argument("--margin", type=float, default=0.2, help="room around the face box (default: 0.2 of its side)")
    parser.add_argument("--no-align", action="store_true", help="do not rotate faces to level the eyes")


def _video_options(parser) -> None:
    parser.add_argument("--every", type=float, default=1.0, help="seconds between frames (default: 1; 0 for scenes only)")
    parser.add_argument("--scene-threshold", type=float, help="also keep scene changes above this difference (0-1)")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per video")
    parser.add_argument("--overwrite", action="store_true", help="replace frames already in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _source(items):
    from .train import _image_source

    return _image_source(items)


def _videos(items):
    return items[0] if len(items) == 1 else list(items)


def _write(table, path, what: str) -> None:
    from ..io.tables import write_table

    write_table(table, path)
    print(f"{what}: {table.num_rows} rows written to {path}")


def _detector(args) -> dict:
    return dict(min_face_size=args.min_face_size, threshold=args.threshold, device=args.device)


def run_faces(args) -> int:
    from ..infer.faces import detect_faces, face_counts

    faces = detect_faces(_source(args.images), progress=not args.no_progress, **_detector(args))
    _write(faces, args.out, "faces")
    counts = face_counts(faces)
    if args.counts:
        _write(counts, args.counts, "counts")
    found = [c for c in counts["faces"].to_pylist() if c is not None]
    print(f"{sum(found)} faces in {len(found)} images ({sum(1 for c in found if c == 0)} without a face, "
          f"{counts.num_rows - len(found)} unreadable)")
    return 0


def run_face_crops(args) -> int:
    from ..infer.faces import face_crops

    crops = face_crops(_source(args.images), args.out, size=args.size, margin=args.margin, align=not args.no_align,
                       largest_only=args.largest_only, label=args.label, overwrite=args.overwrite,
                       progress=not args.no_progress, **_detector(args))
    print(f"{crops.num_rows} face crops written to {args.out} (table: {args.out}/faces.parquet)")
    return 0


def run_classify_faces(args) -> int:
    from ..infer.faces import classify_faces

    result = classify_faces(args.run, _source(args.images), margin=args.margin, align=not args.no_align,
                            progress=not args.no_progress, **_detector(args))
    _write(result.images, args.out, "images")
    if args.faces_out:
        _write(result.faces, args.faces_out, "faces")
    print(result)
    return 0


def run_ocr(args) -> int:
    from ..prepare.ocr import ocr_text, ocr_words

    words = ocr_words(_source(args.images), languages=args.languages, language_column=args.language_column,
                      layout=args.layout, readings=[r.strip() for r in args.readings.split(",") if r.strip()],
                      min_confidence=args.min_confidence, progress=not args.no_progress)
    text = ocr_text(words)
    _write(text, args.out, "text")
    if args.words:
        _write(words, args.words, "words")
    errors = sum(1 for e in text["error"].to_pylist() if e is not None)
    if errors:
        print(f"{errors} images could not be read (see the error column)")
    return 0


def run_moderation_local(args) -> int:
    from ..autotag.moderation import moderation_local

    tags = moderation_local(_source(args.images), detectors=[d.strip() for d in args.detectors.split(",") if d.strip()],
                            min_confidence=args.min_confidence, device=args.device, progress=not args.no_progress)
    _write(tags, args.out, "moderation labels")
    return 0


def run_rekognition_moderation(args) -> int:
    from ..autotag.moderation import rekognition_moderation
    from .autotag import _common, _finish, _require_out

    _require_out(args)
    tags = rekognition_moderation(_source(args.images), min_confidence=args.min_confidence, **_common(args))
    return _finish(tags, args, "moderation labels")


def run_screen(args) -> int:
    import pyarrow as pa

    from ..io.tables import read_table
    from ..prepare.screening import coding_sheet, screen_images, screening_sheet

    tags = pa.concat_tables([read_table(t) for t in args.tags], promote_options="default")
    categories = [c.strip() for c in args.categories.split(",")] if args.categories else None
    screen = screen_images(tags, min_confidence=args.min_confidence, categories=categories)
    _write(screen, args.out, "screen")
    flagged = sum(screen["flagged"].to_pylist())
    print(f"{flagged} of {screen.num_rows} images flagged; nothing was deleted")
    if args.sheet:
        screening_sheet(screen, args.sheet)
        print(f"contact sheet (flagged images blurred): {args.sheet}")
    if args.coding_sheet:
        sheet = coding_sheet(screen, args.coding_sheet, variables=[v.strip() for v in args.variables.split(",")],
                             show_flagged=args.show_flagged)
        print(f"coding sheet: {sheet.num_rows} images in {args.coding_sheet}"
              + ("" if args.show_flagged else f" ({flagged} flagged images left out)"))
    return 0


def _video_arguments(args) -> dict:
    return dict(every=args.every or None, scene_threshold=args.scene_threshold, max_frames=args.max_frames,
                overwrite=args.overwrite, progress=not args.no_progress)


def run_video_frames(args) -> int:
    from ..infer.video import video_frames

    frames = video_frames(_videos(args.videos), args.out, **_video_arguments(args))
    kept = sum(1 for p in frames["path"].to_pylist() if p is not None)
    errors = [e for e in frames["error"].to_pylist() if e is not None]
    print(f"{kept} frames written to {args.out} (table: {args.out}/frames.parquet)"
          + (f"; {len(errors)} videos with problems (see the error column)" if errors else ""))
    return 0


def run_label_video(args) -> int:
    from ..errors import ImagesAsDataError
    from ..infer.video import label_video
    from ..measure.video import video_summary

    videos = list(args.videos)
    if args.tagger == "local":
        from ..autotag import autotag_local

        model = autotag_local
        if args.run:
            videos.insert(0, args.run)
    elif args.run:
        model = args.run
    else:
        raise ImagesAsDataError("give a run directory, or --tagger local")
    labels = label_video(model, _videos(videos), args.out, **_video_arguments(args))
    print(f"labelled frames: {args.out}/labels.parquet ({labels.num_rows} rows)")
    if args.summary:
        _write(video_summary(labels), args.summary, "summary")
    return 0


def run_video_summary(args) -> int:
    from ..io.tables import read_table
    from ..measure.video import video_summary

    summary = video_summary(read_table(args.labels), min_confidence=args.min_confidence)
    if args.out:
        _write(summary, args.out, "summary")
    else:
        print_table(summary)
    return 0


def run_share(args) -> int:
    from ..errors import ImagesAsDataError
    from ..infer.share import share_corpus

    answers = {}
    for item in args.answer:
        if "=" not in item:
            raise ImagesAsDataError(f"--answer {item!r}: write QUESTION=TEXT, e.g. --answer privacy='public figures only'")
        key, text = item.split("=", 1)
        answers[key.strip()] = text.strip()
    def names(text):
        return [n.strip() for n in (text or "").split(",") if n.strip()]

    shared = share_corpus(args.labels, args.out, run=args.run, title=args.title, sources=args.sources,
                          answers=answers, ids=not args.no_ids, columns=names(args.columns), drop=names(args.drop),
                          overwrite=args.overwrite)
    print(shared)
    return 0


def run_rejoin(args) -> int:
    from ..infer.share import rejoin_shared

    joined = rejoin_shared(args.shared, _source(args.images))
    _write(joined, args.out, "re-joined")
    found = sum(1 for p in joined["path"].to_pylist() if p is not None)
    print(f"{found} of {joined.num_rows} shared images found in your copy (matched by SHA-256)")
    return 0
