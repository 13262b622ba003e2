"""imagesasdata: images as data for social science research.

The pipeline of Webb Williams, Casas & Wilkerson (2020): images → labelled table → fine-tuned CNN (validated
honestly) → predictions → analysis. Every result is an Arrow table; a fitted model is a run directory.

    import imagesasdata as iad
    run = iad.finetune(iad.sample_data() / "faces", epochs=5, out="runs/faces")
    print(run)                                   # validation metrics
    labels = run.predict(iad.sample_data() / "new_images")
"""

from pathlib import Path

__version__ = "0.1.0"

from .analysis.calibration import calibration_table  # noqa: E402
from .analysis.estimators import CorrectedGLM, corrected_glm, corrected_prevalence  # noqa: E402
from .analysis.gold import draw_gold_sample, gold_metrics, read_coding_sheet, write_coding_sheet  # noqa: E402
from .analysis.thresholds import (choose_run_threshold, choose_threshold, run_threshold_curves,  # noqa: E402
                                  threshold_curves)
from .autotag import (autotag_local, compare_tags, label_frequencies, rekognition_celebrities,  # noqa: E402
                      rekognition_labels, tag_metrics_from_counts)
from .annotations import aggregate_annotations, annotation_reliability  # noqa: E402
from .backbones import BOOK_ARCHITECTURES, create_backbone, list_architectures  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .data import image_table  # noqa: E402
from .errors import BadImageError, ImagesAsDataError  # noqa: E402
from .dedupe import contact_sheet, duplicate_groups, duplicate_thumbnails, find_duplicates, image_hashes  # noqa: E402
from .emotions import emotion_cooccurrence, emotion_counts, emotion_labels, emotion_max_class  # noqa: E402
from .filters import filter_small  # noqa: E402
from .images import open_rgb  # noqa: E402
from .inventory import image_inventory  # noqa: E402
from .labelling import label_corpus, load_labelling, read_manifest  # noqa: E402
from .layout import split_images, write_layout  # noqa: E402
from .metrics import classification_metrics, metrics_from_counts  # noqa: E402
from .predict import evaluate, predict  # noqa: E402
from .runs import Run, load_run  # noqa: E402
from .splits import split_table  # noqa: E402
from .train import finetune  # noqa: E402
from .tune import grid_summary, load_grid, lr_find, tune, tune_tasks  # noqa: E402


def sample_data() -> Path:
    """The folder of sample images shipped with the package (see its README.md for credits)."""
    from importlib import resources

    try:
        bundled = Path(str(resources.files("imagesasdata.sample_data")))
        if (bundled / "faces").is_dir():
            return bundled
    except ModuleNotFoundError:
        pass
    repository = Path(__file__).resolve().parents[2] / "data"
    if (repository / "faces").is_dir():
        return repository
    raise ImagesAsDataError("the sample data is missing from this installation; reinstall imagesasdata")


__all__ = [
    "BOOK_ARCHITECTURES", "BadImageError", "ImagesAsDataError", "Run", "TrainConfig", "classification_metrics",
    "create_backbone", "evaluate", "finetune", "image_table", "list_architectures", "load_run", "metrics_from_counts",
    "open_rgb", "predict", "sample_data", "split_table",
    # autotaggers (section 6)
    "autotag_local", "compare_tags", "label_frequencies", "rekognition_celebrities", "rekognition_labels",
    "tag_metrics_from_counts",
    # preparing a corpus (inventory, duplicates, small files, annotators, emotion labels, splits)
    "aggregate_annotations", "annotation_reliability", "contact_sheet", "duplicate_groups", "duplicate_thumbnails",
    "emotion_cooccurrence", "emotion_counts", "emotion_labels", "emotion_max_class", "filter_small", "find_duplicates",
    "image_hashes", "image_inventory", "split_images", "write_layout",
    # hyperparameter grids (section 7)
    "grid_summary", "load_grid", "lr_find", "tune", "tune_tasks",
    # labelling a large corpus (resumable shards; local or on Ray)
    "label_corpus", "load_labelling", "read_manifest",
    # from predicted labels to defensible estimates: gold samples, calibration, thresholds, corrected estimation
    "CorrectedGLM", "calibration_table", "choose_run_threshold", "choose_threshold", "corrected_glm",
    "corrected_prevalence", "draw_gold_sample", "gold_metrics", "read_coding_sheet", "run_threshold_curves",
    "threshold_curves", "write_coding_sheet",
]
