"""`finetune()`, the one-line entry point: claim the run directory, check what a resume may change, and hand the
work to the Trainer (trainer.py) or, for several yes/no label columns, to the multi-label trainer (multilabel.py).
It sits above both so that neither imports the other's entry point (no import cycle inside train/).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import runs
from ..errors import ImagesAsDataError, cli_only, literal, setting
from ..infer.run import Run, load_run
from .config import TrainConfig
from .trainer import prepare_trainer


def finetune(data, *, out=None, label: str | None = None, path: str | None = None, resume: bool = False,
             overwrite: bool = False, images=None, **options) -> Run:
    """Fine-tune an ImageNet-pretrained CNN on labelled images and return the validated Run.

    data: anything `image_table()` reads — the book's train/ val/ folders, a folder of class folders, a CSV or
      Parquet file or a data frame with path and label columns (name them with path= and label=).
    label: the label column; or a list of yes/no columns (e.g. ["anger", "fear", "sadness"]) for a multi-label
      task — one image, several labels — trained with one sigmoid output per label (train/multilabel.py).
    out: the run directory (default: a new temporary folder; `Run.save()` copies it elsewhere). It is locked while
      the run trains: a second job writing to it is refused.
    resume: continue an interrupted run in `out` from its last finished epoch, with the options and data it was
      started with; a run that already finished is loaded as it is. Other options or other data are refused before
      anything is written, naming what differs (for a finished run too: resuming never retrains it).
    overwrite: replace a run already in `out`. Without resume or overwrite, an existing run is never touched.
    images: a dict shared between runs on the same images (a grid passes one): decoded images are kept in it
      and reused, so each file is decoded once.
    options: see TrainConfig — the default recipe "fast" (EfficientNet-Lite0 with its first stages frozen, 2 head
      epochs, a one-cycle schedule peaking at 0.004, 8 epochs, early stopping on a CPU without an epoch count);
      recipe="book" for the book's SGD 0.001 / 0.9, batch size 4, StepLR 7 / 0.1, 25 epochs. 80/20 split.
    Returns the finished Run (a multi-label Run for a list of labels). Raises ImagesAsDataError for unusable data
    or options, and when training diverges (the run is then marked failed). Ctrl-C keeps the best model so far in
    `out`.
    """
    if isinstance(label, (list, tuple)):
        # Several yes/no label columns: one image, several labels (train/multilabel.py)
        from .multilabel import finetune_multilabel

        return finetune_multilabel(data, label, out=out, path=path, resume=resume, overwrite=overwrite,
                                   images=images, **options)
    config = TrainConfig.from_options(**options)
    for name, value in (("resume", resume), ("overwrite", overwrite)):
        if value not in (True, False):
            raise ImagesAsDataError(f"{setting(name, value)} must be True or False",
                                    what="option", option=name, value=value)
    if resume and overwrite:
        raise ImagesAsDataError("resume=True and overwrite=True contradict each other: resume continues the run in "
                                "out, overwrite deletes it and starts again. Pass one of them (CLI: --resume or "
                                "--overwrite)", what="option", option="resume", value=True)
    with runs.claim_run_dir(out, resume=resume, overwrite=overwrite) as folder:
        if resume:
            check_resume_options(config, folder)
            if runs.is_complete(folder):
                shutil.rmtree(folder / runs.CHECKPOINT, ignore_errors=True)  # left by a kill after the run completed
                if config.progress:
                    from tqdm.auto import tqdm

                    tqdm.write(already_complete(folder))
                return load_run(folder)
        trainer = prepare_trainer(data, config, folder, label=label, path=path, images=images, resume=resume)
        return trainer.fit(resume=resume)


def already_complete(folder) -> str:
    return f"{folder} already holds a complete run with these options: nothing to train (loaded as it is)"


def check_resume_options(config: TrainConfig, folder: Path) -> None:
    """Refuse to resume the run in `folder` with options other than it was started with (those of its last
    checkpoint, else model.json's); runtime options (device, precision, cache, …) may change. Reads only."""
    saved = runs.recorded_options(folder)
    if saved is None:
        return
    differences = config.differences_from_saved(saved)
    if not differences:
        return
    changed = "; ".join(f"{name}{cli_only('--' + name.replace('_', '-'))}: the run has {literal(theirs)}, this call {literal(mine)}"
                        for name, (mine, theirs) in differences.items())
    if runs.is_complete(folder):
        raise ImagesAsDataError(
            f"{folder} holds a complete run trained with other options ({changed}); nothing was changed. Resuming "
            "continues an interrupted run with the options it was started with and never retrains a finished one: "
            "give the same options to load it as it is, pass overwrite=True (CLI: --overwrite) to train again with "
            "these, or write to another --out folder", what="file", path=folder
        )
    raise ImagesAsDataError(
        f"{folder} holds a run started with other options ({changed}); nothing was changed. Resume it with the same "
        "options, pass overwrite=True (CLI: --overwrite) to start again with these, or write to a new --out folder",
        what="file", path=folder
    )
