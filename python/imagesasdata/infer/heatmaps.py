"""Where a fitted run looks (the book's section 4.5: the husky that was snow): class-activation heatmaps for any
images and any class, as a table and, with `out`, as overlay images — and for the top losses in one call.

The network is built once per call and images go through it in batches (model.cams.HeatmapMaker on
model.inference.map_paths), so hundreds of images cost one model load.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..data.table import image_table
from ..errors import ImagesAsDataError, did_you_mean, listing, setting
from ..io.locks import claimed_directory
from ..io.tables import atomic_path, write_json, write_table
from ..runs import as_run_directory

HEATMAPS_DESCRIPTION = "heatmaps.json"
HEATMAPS_TABLE = "heatmaps.parquet"
OVERLAYS = "overlays"


def heatmaps(run, images, *, target: str = "predicted", method: str = "gradcam", layer: str | None = None,
             out=None, overwrite: bool = False, heatmap_size: int = 56, alpha: float = 0.5, batch_size: int = 16,
             device: str = "auto", num_workers: int | None = None, progress: bool = True,
             allow_unfinished: bool = False) -> pa.Table:
    """Class-activation heatmaps of a fitted run for `images`: where in each image the evidence for a class lies.

    images: a folder, image files, a CSV/Parquet table or data frame with a path column (and image_id, label), or
      an image_table().
    target: whose heatmap — "predicted" (each image's predicted class), "label" (each image's label column), or
      one class name for every image.
    method: "gradcam" (default), "gradcam++", "xgradcam", "layercam", "hirescam"; gradient-free "scorecam",
      "ablationcam" (one forward pass per channel of the layer: minutes per image without a GPU) and "eigencam"
      (the same map for every class).
    layer: the module to read the map from (heatmap_layers() lists them); default: the network's last feature map.
    out: a new folder for overlays/<n>-<image_id>.png (the heatmap over the image the model saw), heatmaps.parquet
      and heatmaps.json; overwrite=True replaces an earlier one.
    heatmap_size: side of the heatmap kept in the table (the map is computed at the model's image size).
    alpha: opacity of the heatmap in the overlays (0–1).
    Returns image_id, path, [label], target, probability (of the target class), predicted, method, layer,
    heatmap (heatmap_size² numbers in 0–1, row by row from the top left), heatmap_size, centre_x and centre_y (the
    heatmap's centre of mass, 0–1 from the left and the top), overlay (the PNG's path, with out) and error (an
    unreadable image is a row with its reason, never a stopped job).
    Raises ImagesAsDataError for an unknown class, layer or method, or images without labels for target="label".
    """
    from tqdm.auto import tqdm

    from ..model.cams import HeatmapMaker
    from ..model.inference import Predictor, batch_ranges, map_paths

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    table = images if isinstance(images, pa.Table) and {"image_id", "path"} <= set(images.column_names) \
        else image_table(images)
    classes = run.classes
    heatmap_size = _positive_int(heatmap_size, "heatmap_size", minimum=2)
    batch_size = _positive_int(batch_size, "batch_size")
    if not 0 <= float(alpha) <= 1:
        raise ImagesAsDataError(f"alpha={alpha}: the heatmap's opacity must be between 0 and 1", what="option",
                                option="alpha", value=alpha, expected="between 0 and 1", hint="the heatmap's opacity")
    targets = _targets(table, target, classes)
    predictor = Predictor(run.description, run.weights(), device, "fp32")
    maker = HeatmapMaker(predictor, method, layer, batch_size=max(batch_size, 32))
    maker.targets = targets
    paths = table["path"].to_pylist()
    n = len(paths)
    probabilities = np.full((n, len(classes)), np.nan)
    chosen = np.full(n, -1, np.int64)
    maps = np.full((n, heatmap_size, heatmap_size), np.nan, np.float32)
    errors = [""] * n
    overlays: list = [None] * n

    def keep(output, folder=None):
        for k, row in enumerate(output["row"]):
            errors[row] = output["error"][k]
            if errors[row]:
                continue
            probabilities[row] = output["probabilities"][k]
            chosen[row] = output["targets"][k]
            maps[row] = resize_map(output["heatmaps"][k], heatmap_size)
            if folder is not None:
                overlays[row] = str(_write_overlay(folder, row, table["image_id"][row].as_py(),
                                                   output["views"][k], output["heatmaps"][k], alpha))
        bar.update(len(output["row"]))

    def compute(folder=None):
        map_paths(lambda batch: _with_views(maker, batch), predictor.prep, paths, batch_ranges(0, n, batch_size),
                  lambda output: keep(output, folder), workers=num_workers)

    try:
        with tqdm(total=n, desc=f"heatmaps ({maker.method})", unit="img", disable=not progress, leave=False) as bar:
            if out is None:
                compute()
                result = _result_table(table, classes, probabilities, chosen, maps, errors, overlays, maker)
            else:
                with claimed_directory(out, what="heatmap folder", marker=HEATMAPS_DESCRIPTION, resume=False,
                                       overwrite=overwrite, option_hint="another folder") as folder:
                    write_json({"format": "imagesasdata-heatmaps", "status": "started", "run": str(run.path),
                                "run_id": run.description.get("run_id"), "method": maker.method,
                                "layer": maker.layer, "target": target, "images": n}, folder / HEATMAPS_DESCRIPTION)
                    compute(folder)
                    result = _result_table(table, classes, probabilities, chosen, maps, errors, overlays, maker)
                    write_table(result, folder / HEATMAPS_TABLE)
                    write_json({"format": "imagesasdata-heatmaps", "status": "complete", "run": str(run.path),
                                "run_id": run.description.get("run_id"), "method": maker.method,
                                "layer": maker.layer, "layer_shape": maker.layer_info(), "target": target,
                                "images": n, "unreadable": sum(1 for e in errors if e)},
                               folder / HEATMAPS_DESCRIPTION)
    finally:
        maker.close()
    return result


def top_loss_heatmaps(run, n: int = 16, *, split: str | None = None, target: str = "predicted", **options) -> pa.Table:
    """Return heatmaps of the n validation (and test) images with the largest losses — where the model looked when it was
    most wrong. Same options and columns as heatmaps(), plus split, label, loss and probability_of_label."""
    from .run import as_run

    fitted = as_run(as_run_directory(run))
    top = fitted.interpretation(split).top_losses(_positive_int(n, "n"))
    if top.num_rows == 0:
        raise ImagesAsDataError("this run has no validation predictions to rank by loss")
    result = heatmaps(fitted, top.select(["image_id", "path", "label"]), target=target, **options)
    for name in ("split", "loss", "probability_of_label"):
        if name in top.column_names:
            result = result.append_column(name, top[name])
    return result


def heatmap_layers(run, *, allow_unfinished: bool = False) -> pa.Table:
    """Return the modules of a run's network a heatmap can be read from, in the order they run: name, type, channels,
    height and width of the feature map at the run's image size, and default (the one heatmaps() uses)."""
    from ..model.cams import default_layer, feature_map_layers
    from ..model.inference import Predictor

    run = as_run_directory(run)
    run.require_finished(allow_unfinished)
    predictor = Predictor(run.description, run.weights(), "cpu", "fp32")
    layers = feature_map_layers(predictor.model, predictor.head, predictor.prep.image_size)
    chosen = default_layer(layers)
    table = pa.Table.from_pylist(layers, schema=pa.schema([("name", pa.string()), ("type", pa.string()),
                                                           ("channels", pa.int64()), ("height", pa.int64()),
                                                           ("width", pa.int64())]))
    return table.append_column("default", pa.array([r["name"] == chosen for r in layers], pa.bool_()))


# ------------------------------------------------------------------------------------------ pieces

def _positive_int(value, name: str, minimum: int = 1) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number != value or number < minimum:
        raise ImagesAsDataError(f"{setting(name, value)}: use a whole number of at least {minimum}", what="option",
                                option=name, value=value, expected=f"a whole number of at least {minimum}")
    return number


def _targets(table: pa.Table, target, classes) -> dict:
    """{row: class index} for the requested target (rows left out get their predicted class)."""
    index = {c: i for i, c in enumerate(classes)}
    if target in (None, "predicted"):
        return {}
    if target == "label":
        if "label" not in table.column_names:
            raise ImagesAsDataError("target='label', but the images have no label column; pass labelled images, "
                                    "or target='predicted' or a class name",
                                    what="option", option="target", value="label")
        labels = table["label"].to_pylist()
        unknown = sorted({str(v) for v in labels if v is not None and str(v) not in index})
        if unknown:
            raise ImagesAsDataError(f"labels {listing([repr(u) for u in unknown])} are not classes of this model "
                                    f"({', '.join(classes)})")
        return {row: index[str(v)] for row, v in enumerate(labels) if v is not None}
    if str(target) not in index:
        raise ImagesAsDataError(f"{setting('target', target)} is not a class of this model; choose 'predicted', 'label' or one "
                                f"of: {', '.join(classes)}.{did_you_mean(str(target), classes)}", what="option",
                                option="target", value=target)
    return {row: index[str(target)] for row in range(table.num_rows)}


def _with_views(maker, batch: dict) -> dict:
    """The maker's output plus the uint8 views the model saw (for the overlays)."""
    output = maker(batch)
    size = maker.predictor.prep.image_size
    views = np.zeros((len(output["row"]), size, size, 3), np.uint8)
    readable = np.flatnonzero([e == "" for e in output["error"]])
    if len(readable):
        views[readable] = maker.predictor.views(batch, readable).permute(0, 2, 3, 1).numpy()
    output["views"] = views
    return output


def resize_map(heatmap: np.ndarray, size: int) -> np.ndarray:
    """A heatmap resampled to size × size (area-averaged when shrinking, so the mass stays where it was)."""
    from PIL import Image

    if heatmap.shape == (size, size):
        return heatmap.astype(np.float32)
    image = Image.fromarray(np.asarray(heatmap, np.float32), mode="F")
    shrinking = size < heatmap.shape[0]
    return np.asarray(image.resize((size, size), Image.BOX if shrinking else Image.BILINEAR), np.float32)


def overlay_image(view: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, display: int = 224):
    """The heatmap (jet colours, 0–1) over the image the model saw, as a Pillow image of display × display pixels
    (never smaller than the model's view)."""
    from PIL import Image
    from pytorch_grad_cam.utils.image import show_cam_on_image

    display = max(int(display), view.shape[0])
    picture = np.asarray(Image.fromarray(view).resize((display, display), Image.BICUBIC), np.float32) / 255.0
    mask = np.clip(resize_map(heatmap, display), 0.0, 1.0)
    return Image.fromarray(show_cam_on_image(picture, mask, use_rgb=True, image_weight=1.0 - float(alpha)))


def _write_overlay(folder: Path, row: int, image_id, view, heatmap, alpha) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(str(image_id)).with_suffix(""))).strip("._")[-80:] or "image"
    target = folder / OVERLAYS / f"{row + 1:05d}-{slug}.png"
    with atomic_path(target) as temporary:
        overlay_image(view, heatmap, alpha).save(temporary, format="PNG")
    return target


def _result_table(table, classes, probabilities, chosen, maps, errors, overlays, maker) -> pa.Table:
    n = table.num_rows
    ok = np.array([not e for e in errors], bool)
    size = maps.shape[1]
    grid = np.arange(size, dtype=np.float64) + 0.5
    totals = np.nansum(maps, axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        centre_x = np.where(ok & (totals > 0), np.nansum(maps * grid[None, None, :], axis=(1, 2)) / totals / size, np.nan)
        centre_y = np.where(ok & (totals > 0), np.nansum(maps * grid[None, :, None], axis=(1, 2)) / totals / size, np.nan)
    predicted = [classes[int(np.argmax(p))] if good else None for p, good in zip(probabilities, ok)]
    target_names = [classes[k] if good else None for k, good in zip(chosen, ok)]
    target_probability = [float(p[k]) if good else None for p, k, good in zip(probabilities, chosen, ok)]
    flat = pa.array(np.nan_to_num(maps, nan=0.0).reshape(n * size * size), pa.float32())
    heatmap = pa.FixedSizeListArray.from_arrays(flat, size * size, mask=pa.array(~ok))
    columns = {"image_id": table["image_id"], "path": table["path"]}
    if "label" in table.column_names:
        columns["label"] = table["label"].cast(pa.string())
    columns.update({
        "target": pa.array(target_names, pa.string()),
        "probability": pa.array(target_probability, pa.float64()),
        "predicted": pa.array(predicted, pa.string()),
        "method": pa.array([maker.method] * n, pa.string()),
        "layer": pa.array([maker.layer] * n, pa.string()),
        "heatmap": heatmap,
        "heatmap_size": pa.array([size] * n, pa.int32()),
        "centre_x": pa.array(centre_x, pa.float64(), from_pandas=True),
        "centre_y": pa.array(centre_y, pa.float64(), from_pandas=True),
        "overlay": pa.array(overlays, pa.string()),
        "error": pa.array([e or None for e in errors], pa.string()),
    })
    return pa.table(columns)
