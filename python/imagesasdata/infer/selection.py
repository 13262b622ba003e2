"""Which images to label next, from a fitted run and a pool of unlabelled images: one forward pass gives each image's
class probabilities and its embedding (model.inference.Predictor with features=True); explore.selection ranks
them (uncertainty mixed with diversity). The run's own training and validation images are never proposed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..data.table import image_table
from ..model.inference import predictions_table
from ..runs import as_run_directory


def pool_predictions(run, pool, *, batch_size: int = 32, device: str = "auto", num_workers: int | None = None,
                     progress: bool = True, allow_unfinished: bool = False) -> tuple[pa.Table, pa.Table]:
    """Return (predictions, embeddings) of a pool of images under a run, from one pass: predict()'s table, and
    image_id, embedding (the run's penultimate features; null for unreadable images)."""
    from tqdm.auto import tqdm

    from ..model.inference import Predictor, batch_ranges, map_paths

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    table = pool if isinstance(pool, pa.Table) and {"image_id", "path"} <= set(pool.column_names) else image_table(pool)
    predictor = Predictor(run.description, run.weights(), device, "fp32", features=True)
    n = table.num_rows
    probabilities = np.full((n, len(run.classes)), np.nan)
    features: list = [None] * n
    errors = [""] * n

    def keep(output):
        for k, row in enumerate(output["row"]):
            errors[row] = output["error"][k]
            probabilities[row] = output["probabilities"][k]
            features[row] = None if errors[row] else output["features"][k]
        bar.update(len(output["row"]))

    with tqdm(total=n, desc="predicting the pool", unit="img", disable=not progress, leave=False) as bar:
        map_paths(predictor, predictor.prep, table["path"].to_pylist(), batch_ranges(0, n, int(batch_size)), keep,
                  workers=num_workers)
    width = next((len(f) for f in features if f is not None), 1)
    matrix = np.stack([f if f is not None else np.zeros(width, np.float32) for f in features]) if n else \
        np.zeros((0, width), np.float32)
    ok = np.array([f is not None for f in features], bool)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), width, mask=pa.array(~ok))
    embeddings = pa.table({"image_id": table["image_id"], "path": table["path"], "embedding": embedding,
                           "error": pa.array([e or None for e in errors], pa.string())})
    return predictions_table(table, probabilities, errors, run.classes), embeddings


def select_images(run, pool, n: int = 20, *, strategy: str = "uncertainty+diversity", uncertainty: str = "entropy",
                  candidates: int | None = None, exclude=None, seed: int = 0, batch_size: int = 32,
                  device: str = "auto", num_workers: int | None = None, progress: bool = True,
                  allow_unfinished: bool = False) -> pa.Table:
    """The n images of `pool` most worth hand-labelling next for this run, in the order to code them.

    pool: unlabelled images (a folder, files, a table with a path column, an image_table()).
    strategy, uncertainty, candidates, seed: see explore.selection.rank_for_labelling() — by default the most
      uncertain images (entropy), spread over the embedding space so the batch is not twenty near-copies.
    exclude: more images already labelled (a table with path or image_id); the run's own images are always left out.
    Returns rank, image_id, path, predicted, probability, uncertainty, strategy, prob_<class>…; write_selection_sheet()
    turns it into a sheet for coders.
    """
    from ..explore.selection import rank_for_labelling

    run = as_run_directory(run)
    predictions, embeddings = pool_predictions(run, pool, batch_size=batch_size, device=device,
                                               num_workers=num_workers, progress=progress,
                                               allow_unfinished=allow_unfinished)
    known = run.splits.select(["path"])
    if exclude is not None:
        from ..io.tables import to_arrow

        extra = to_arrow(exclude)
        column = "path" if "path" in extra.column_names else None
        if column is None:   # matched by image_id instead: rank_for_labelling handles it
            return rank_for_labelling(predictions.filter(_not_in(predictions["path"], known["path"])), embeddings, n,
                                      strategy=strategy, uncertainty=uncertainty, candidates=candidates,
                                      exclude=extra, seed=seed)
        known = pa.concat_tables([known, pa.table({"path": extra["path"].cast(pa.string())})])
    return rank_for_labelling(predictions, embeddings, n, strategy=strategy, uncertainty=uncertainty,
                              candidates=candidates, exclude=known, seed=seed)


def _not_in(column, values):
    import pyarrow.compute as pc

    return pc.invert(pc.is_in(column, value_set=values.combine_chunks() if hasattr(values, "combine_chunks") else values))
