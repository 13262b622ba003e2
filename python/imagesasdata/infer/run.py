"""The fitted model users meet: a run directory (runs.RunDirectory) with the verbs that use its network."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from ..errors import ImagesAsDataError, flag
from ..runs import RUN_DESCRIPTION, RunDirectory


class Run(RunDirectory):
    """A fitted model in its run directory: description, tables, checked weights, and predict()/evaluate()."""

    def predict(self, images, **options) -> pa.Table:
        """Label images with this run. Returns predict()'s table (see imagesasdata.predict(), which says what it
        raises)."""
        from .predict import predict

        return predict(self, images, **options)

    def evaluate(self, data, **options):
        """Evaluate this run on held-out labelled images. Returns evaluate()'s Evaluation (see
        imagesasdata.evaluate(), which says what it raises)."""
        from .predict import evaluate

        return evaluate(self, data, **options)

    def summary(self) -> str:
        """Return RunDirectory's summary as text, plus what the metrics can be trusted for: why there is no test split, if none,
        and the book recipe's choices that were overridden."""
        lines = [super().summary()]
        if self.description.get("task") == "multi_label":   # several yes/no labels per image (train/multilabel.py)
            lines[0] = lines[0].replace(" classes: ", " labels, one sigmoid output each: ", 1)
        test_split = self.description.get("test_split") or {}
        if test_split.get("why_none"):
            lines.append(f"  no test split: {test_split['why_none']}")
        overridden = (self.description.get("recipe") or {}).get("overridden") or {}
        if overridden:
            recipe = self.description["recipe"]["name"]
            lines.append(f"  recipe {recipe!r}, with " + ", ".join(
                f"{name}={change['used']!r} instead of its {change['recipe']!r}" for name, change in overridden.items()))
        return "\n".join(lines)

    def interpretation(self, split: str | None = None):
        """Return what the model gets wrong on its validation (and test) images, and how sure it was: an
        Interpretation (top_losses(), misclassified(), most_confused()). Raises ImagesAsDataError for an unknown
        split."""
        from ..measure.interpretation import Interpretation

        return Interpretation.from_run(self, split)


def load_run(path) -> Run:
    """Open a run directory written by finetune(). Returns its Run; raises ImagesAsDataError if it is not one, or
    is damaged."""
    path = Path(path).expanduser().absolute()
    if not (path / RUN_DESCRIPTION).exists():
        raise ImagesAsDataError(f"{path} is not a run directory (no {RUN_DESCRIPTION}); pass the {flag('out')} folder of a "
                                "finetune run", what="file", path=str(path),
                                hint=f"pass the {flag('out')} folder of a finetune run")
    return Run(path)


def as_run(run) -> Run:
    """A Run from a Run, a RunDirectory or a path."""
    if isinstance(run, Run):
        return run
    return load_run(run.path if isinstance(run, RunDirectory) else run)
