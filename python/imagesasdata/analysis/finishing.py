"""What a run adds about itself when training ends: temperature scaling fitted on the validation split (with ECE
and Brier score before and after, calibration.py; written to calibration.parquet) and how its images were selected
(transfer.py).

One call from infer/finished.py as a run ends; numpy only (logits arrive as tensors and are read as arrays).
"""

from __future__ import annotations

import pyarrow as pa

from .calibration import calibrate_run
from .transfer import training_selection


def finishing_analysis(description: dict, table: pa.Table, targets, classes, positive_class,
                       results: dict) -> tuple[dict, pa.Table]:
    """(entries for model.json, calibration.parquet's table): {"calibration": …, "training_selection": …} and the
    ECE/Brier rows of every evaluated split."""
    classes = list(classes)
    positive = classes.index(positive_class) if positive_class in classes else min(1, len(classes) - 1)
    calibration, metrics = calibrate_run(results, targets, split="val", positive=positive)
    return {"calibration": calibration, "training_selection": training_selection(description, table)}, metrics
