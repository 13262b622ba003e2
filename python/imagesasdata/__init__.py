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

# The public API, imported on first use (PEP 562): `import imagesasdata` (and library(imagesasdata) in R) loads no
# torch; preparing a corpus never does; torch arrives with the first model.
_PUBLIC = {
    "errors": ("BadImageError", "ImagesAsDataError"),
    "notices": ("suppress_notices",),
    "io.images": ("open_rgb",),
    "data.table": ("image_table",),
    "data.splits": ("split_table",),
    "data.summary": ("data_summary",),
    "prepare.annotations": ("aggregate_annotations", "annotation_reliability"),
    "prepare.dedupe": ("contact_sheet", "duplicate_groups", "duplicate_thumbnails", "find_duplicates", "image_hashes"),
    "prepare.emotions": ("emotion_cooccurrence", "emotion_counts", "emotion_labels", "emotion_max_class"),
    "prepare.filters": ("filter_small",),
    "prepare.inventory": ("image_inventory",),
    "prepare.layout": ("split_images", "write_layout"),
    "prepare.ocr": ("ocr_languages", "ocr_text", "ocr_words"),
    "prepare.screening": ("coding_sheet", "screen_images", "screening_sheet"),
    "prepare.selection_sheets": ("add_coded_images", "read_selection_sheet", "write_selection_sheet"),
    "measure.metrics": ("classification_metrics", "metrics_from_confusion", "metrics_from_counts"),
    "measure.interpretation": ("Interpretation",),
    "measure.intervals": ("proportion_interval",),
    "measure.subgroups": ("SubgroupAudit", "subgroup_metrics"),
    "explore.vectors": ("embedding_matrix", "embeddings_wide"),
    "explore.maps": ("embedding_clusters", "embedding_map", "nearest_images"),
    "explore.sheets": ("cluster_sheets",),
    "explore.selection": ("rank_for_labelling", "uncertainty_scores"),
    "teach.seeing": ("activation_table", "convolution_steps", "convolve", "image_array", "max_pool",
                     "network_arithmetic", "pixel_table", "pooling_steps"),
    "analysis.calibration": ("calibrate_to_corpus", "calibration_table"),
    "analysis.planner": ("GoldPlan", "plan_gold_sample"),
    "analysis.estimators": ("CorrectedGLM", "corrected_glm", "corrected_prevalence"),
    "analysis.gold": ("draw_gold_sample", "gold_metrics", "read_coding_sheet", "write_coding_sheet"),
    "analysis.thresholds": ("choose_run_threshold", "choose_threshold", "run_threshold_curves", "threshold_curves"),
    "measure.video": ("video_summary",),
    "model.backbones": ("BOOK_ARCHITECTURES", "create_backbone", "list_architectures"),
    "infer.run": ("Run", "load_run"),
    "infer.predict": ("evaluate", "predict"),
    "infer.labelling": ("label_corpus", "load_labelling", "read_manifest"),
    "infer.faces": ("classify_faces", "crop_faces", "detect_faces", "face_counts", "face_crops"),
    "infer.video": ("label_video", "video_frames"),
    "infer.share": ("rejoin_shared", "share_corpus"),
    "infer.heatmaps": ("heatmap_layers", "heatmaps", "top_loss_heatmaps"),
    "infer.embeddings": ("image_embeddings",),
    "infer.selection": ("pool_predictions", "select_images"),
    "infer.feature_maps": ("feature_maps",),
    "train.config": ("TrainConfig",),
    "train.finetuning": ("finetune",),
    "train.grids": ("grid_summary", "load_grid", "tune", "tune_tasks"),
    "train.lr_find": ("lr_find",),
    "train.learning_curve": ("learning_curve",),
    "autotag": ("autotag_local", "compare_tags", "label_frequencies", "rekognition_celebrities", "rekognition_labels",
                "tag_metrics_from_counts"),
    "autotag.moderation": ("moderation_local", "rekognition_moderation"),
    "autotag.codebooks": ("Codebook", "codebook"),
    "autotag.vlm": ("vlm_code",),
    "autotag.zero_shot": ("zero_shot_labels",),
    "autotag.validation": ("coder_agreement", "prompt_sensitivity", "vlm_predictions"),
}
_WHERE = {name: module for module, names in _PUBLIC.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'imagesasdata' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))


def sample_data() -> Path:
    """Return the folder of sample images shipped with the package (see its README.md for credits). Raises
    ImagesAsDataError when the installation lacks it."""
    import importlib.util

    # The wheel ships the images as the folder imagesasdata/sample_data (no __init__.py). Its location comes from
    # the import system without importing it: importing would bind the name sample_data to the folder's module,
    # hiding this function, and importlib.resources hands a namespace folder back as a MultiplexedPath.
    spec = importlib.util.find_spec("imagesasdata.sample_data")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "faces").is_dir():
            return Path(folder)
    repository = Path(__file__).resolve().parents[2] / "data"
    if (repository / "faces").is_dir():
        return repository
    from .errors import ImagesAsDataError

    raise ImagesAsDataError("the sample data is missing from this installation; reinstall imagesasdata")


__all__ = [
    "BOOK_ARCHITECTURES", "BadImageError", "ImagesAsDataError", "Interpretation", "Run", "TrainConfig",
    "suppress_notices",
    "classification_metrics",
    "create_backbone", "evaluate", "finetune", "image_table", "list_architectures", "load_run", "metrics_from_counts",
    "open_rgb", "predict", "sample_data", "split_table",
    # autotaggers (section 6)
    "autotag_local", "compare_tags", "label_frequencies", "rekognition_celebrities", "rekognition_labels",
    "tag_metrics_from_counts",
    # coding with words: a codebook read by a vision-language model, classes as sentences for CLIP
    "Codebook", "codebook", "coder_agreement", "prompt_sensitivity", "vlm_code", "vlm_predictions", "zero_shot_labels",
    # preparing a corpus (inventory, duplicates, small files, annotators, emotion labels, splits)
    "aggregate_annotations", "annotation_reliability", "contact_sheet", "duplicate_groups", "duplicate_thumbnails",
    "emotion_cooccurrence", "emotion_counts", "emotion_labels", "emotion_max_class", "filter_small", "find_duplicates",
    "image_hashes", "image_inventory", "split_images", "write_layout",
    # how a computer sees an image (section 3): pixels, a small network, convolution, pooling, feature maps
    "activation_table", "convolution_steps", "convolve", "feature_maps", "image_array", "max_pool",
    "network_arithmetic", "pixel_table", "pooling_steps",
    # hyperparameter grids and the data per task (section 7: Tables 7.1, 7.2)
    "data_summary", "grid_summary", "load_grid", "lr_find", "tune", "tune_tasks",
    # labelling a large corpus (resumable shards; local or on Ray)
    "label_corpus", "load_labelling", "read_manifest",
    # beyond one label per image: faces, text in images, a sensitive-content prescreen, video, sharing
    "classify_faces", "crop_faces", "detect_faces", "face_counts", "face_crops",
    "ocr_languages", "ocr_text", "ocr_words",
    "coding_sheet", "moderation_local", "rekognition_moderation", "screen_images", "screening_sheet",
    "label_video", "video_frames", "video_summary",
    "rejoin_shared", "share_corpus",
    # from predicted labels to defensible estimates: gold samples, calibration, thresholds, corrected estimation
    "CorrectedGLM", "GoldPlan", "calibrate_to_corpus", "calibration_table", "choose_run_threshold", "choose_threshold", "corrected_glm",
    "corrected_prevalence", "draw_gold_sample", "gold_metrics", "read_coding_sheet", "run_threshold_curves",
    "threshold_curves", "write_coding_sheet", "plan_gold_sample", "learning_curve",
    "Interpretation", "metrics_from_confusion", "proportion_interval",
    # looking inside: heatmaps, subgroup audits, embeddings and maps, which images to label next
    "heatmap_layers", "heatmaps", "top_loss_heatmaps", "SubgroupAudit", "subgroup_metrics", "image_embeddings",
    "embedding_matrix", "embeddings_wide", "embedding_map", "embedding_clusters", "nearest_images", "cluster_sheets",
    "uncertainty_scores", "rank_for_labelling", "pool_predictions", "select_images", "write_selection_sheet",
    "read_selection_sheet", "add_coded_images",
]
