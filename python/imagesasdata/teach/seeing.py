"""How a computer sees an image (the book's section 3), computed rather than described.

Each function does one step of the chapter with numbers a reader can check by hand, and returns the working as a
table so that a class sees every product and sum:

- image_array() / pixel_table(): an image is an H x W x 3 array of integers from 0 to 255 (red, green, blue).
- network_arithmetic(): a small fully connected network (the book's Figure 3.2): each unit's weighted sum plus
  bias (Z), then its activation.
- activation() / activation_table(): ReLU, sigmoid, tanh (and the identity), the curves of Figure 3.3.
- convolve() / convolution_steps(): a filter slid over an input (Figures 3.4 and 3.6): each output cell is the
  sum of the elementwise products of the filter and the window under it, plus the bias. As in every CNN library,
  the filter is not flipped (strictly, cross-correlation).
- max_pool() / pooling_steps(): the largest value of each window (Figure 3.7).

Rows and columns in the tables count from 1, as the book's subscripts do (Z11 is the first row, first column).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ImagesAsDataError, did_you_mean, setting
from ..io.images import open_rgb

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "identity": lambda z: z,
}


# ---------------------------------------------------------------------------------------------- images

def image_array(image, size: int | None = None) -> np.ndarray:
    """Return an image file (any format the engine reads) as the H x W x 3 uint8 array a network starts from: height,
    width, then the red, green and blue intensities (0-255). size: shrink so that the longer side is at most this
    many pixels (aspect ratio kept), so that the numbers fit on a page. Raises BadImageError for unreadable files."""
    picture = open_rgb(image)
    if size is not None:
        size = _positive_int(size, "size")
        scale = size / max(picture.size)
        if scale < 1:
            from PIL import Image

            picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                     Image.BILINEAR)
    return np.array(picture, dtype=np.uint8)


def pixel_table(image, size: int | None = None) -> pa.Table:
    """Return image_array() in long form, one row per pixel: row, col (from 1), red, green, blue."""
    array = image_array(image, size) if not isinstance(image, np.ndarray) else _rgb(image)
    height, width, _ = array.shape
    rows, cols = np.meshgrid(np.arange(1, height + 1), np.arange(1, width + 1), indexing="ij")
    flat = array.reshape(-1, 3)
    return pa.table({"row": rows.ravel().tolist(), "col": cols.ravel().tolist(), "red": flat[:, 0].tolist(),
                     "green": flat[:, 1].tolist(), "blue": flat[:, 2].tolist()})


def _rgb(array) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImagesAsDataError(f"an RGB image is an H x W x 3 array; this one is {' x '.join(map(str, array.shape))}")
    return array


# ---------------------------------------------------------------------------------------------- a small network

def activation(z, name: str = "relu") -> np.ndarray:
    """The activation function `name` (relu, sigmoid, tanh, identity) applied elementwise to z."""
    return ACTIVATIONS[_activation_name(name)](np.asarray(z, dtype=np.float64))


def activation_table(z=None, names=("relu", "sigmoid", "tanh")) -> pa.Table:
    """Return the curves of Figure 3.3: for each activation and each input z (default -4 to 4 in steps of 0.1), its
    output. Columns: activation, z, output."""
    z = np.round(np.arange(-4.0, 4.0 + 1e-9, 0.1), 10) if z is None else np.asarray(z, dtype=np.float64).ravel()
    names = [names] if isinstance(names, str) else list(names)
    rows = {"activation": [], "z": [], "output": []}
    for name in names:
        rows["activation"] += [_activation_name(name)] * len(z)
        rows["z"] += z.tolist()
        rows["output"] += activation(z, name).tolist()
    return pa.table(rows)


def network_arithmetic(inputs, layers) -> pa.Table:
    """Forward propagation through a small fully connected network, one unit at a time (the book's Figure 3.2).

    inputs: the input values x1..xn. layers: a list of layers, each a dict with "weights" (one row per unit of the
      layer, one weight per input to it), "bias" (one per unit, default 0) and "activation" (default "relu";
      "identity" for none). Each layer's outputs are the next layer's inputs.
    Returns one row per unit: layer and unit (from 1), z (the weighted sum plus bias), output (the activation of
    z), activation, and working — the sum written out ("0.5*1.2 + 0.3*(-0.4) + 0.1 = 0.58").
    Raises ImagesAsDataError when a layer's weights do not fit its inputs.
    """
    values = np.asarray(inputs, dtype=np.float64).ravel()
    if not len(layers):
        raise ImagesAsDataError("network_arithmetic() needs at least one layer, e.g. "
                                "[{'weights': [[0.2, 0.5]], 'bias': [0.1], 'activation': 'relu'}]")
    rows = {"layer": [], "unit": [], "z": [], "output": [], "activation": [], "working": []}
    for number, layer in enumerate(layers, start=1):
        if not isinstance(layer, dict) or "weights" not in layer:
            raise ImagesAsDataError(f"layer {number}: give a dict with 'weights' (one row per unit), 'bias' and "
                                    "'activation'")
        weights = np.atleast_2d(np.asarray(layer["weights"], dtype=np.float64))
        if weights.shape[1] != len(values):
            raise ImagesAsDataError(f"layer {number}: each unit needs {len(values)} weights (one per input), but the "
                                    f"weights are {weights.shape[0]} x {weights.shape[1]}")
        bias = np.asarray(layer.get("bias", 0.0), dtype=np.float64).ravel()
        bias = np.repeat(bias, weights.shape[0]) if bias.size == 1 else bias
        if bias.size != weights.shape[0]:
            raise ImagesAsDataError(f"layer {number}: {weights.shape[0]} units need {weights.shape[0]} biases, not "
                                    f"{bias.size}")
        name = _activation_name(layer.get("activation", "relu"))
        z = weights @ values + bias
        outputs = activation(z, name)
        for unit in range(weights.shape[0]):
            terms = [f"{_number(w)}*{_number(x)}" for w, x in zip(weights[unit], values)]
            working = " + ".join(terms + ([_number(bias[unit])] if bias[unit] else [])) + f" = {_number(z[unit], brackets=False)}"
            rows["layer"].append(number)
            rows["unit"].append(unit + 1)
            rows["z"].append(float(z[unit]))
            rows["output"].append(float(outputs[unit]))
            rows["activation"].append(name)
            rows["working"].append(working)
        values = outputs
    return pa.table(rows)


# ---------------------------------------------------------------------------------------------- convolution, pooling

def convolve(volume, filters, bias=0.0, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Slide each filter over the input volume: output[i, j, k] = sum(window(i, j) * filter k) + bias[k].

    volume: H x W (one channel) or H x W x C. filters: one filter h x w (x C), or several stacked as K x h x w (x C)
    when the input has channels (a list of filters works too). stride: pixels the filter moves each step; padding:
    rows and columns of zeros added around the input first. Returns H' x W' for one filter, H' x W' x K for several,
    with H' = (H + 2 padding - h) / stride + 1 (a non-integer is an error naming the sizes).
    """
    volume, stack, bias, single = _conv_inputs(volume, filters, bias)
    out = _convolve(volume, stack, bias, _positive_int(stride, "stride"), _whole(padding, "padding"))
    return out[:, :, 0] if single else out


def _convolve(volume, stack, bias, stride: int, padding: int) -> np.ndarray:
    """volume H x W x C, stack K x h x w x C, bias K: the H' x W' x K output."""
    padded = np.pad(volume, ((padding, padding), (padding, padding), (0, 0)))
    k, h, w, _ = stack.shape
    out_h, out_w = _output_size(padded.shape[0], h, stride, "height"), _output_size(padded.shape[1], w, stride, "width")
    out = np.empty((out_h, out_w, k))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[i * stride:i * stride + h, j * stride:j * stride + w, :]
            out[i, j, :] = (window[None] * stack).sum(axis=(1, 2, 3)) + bias
    return out


def convolution_steps(volume, filters, bias=0.0, stride: int = 1, padding: int = 0) -> pa.Table:
    """Return convolve()'s working: one row per output cell and filter — filter (from 1), row, col (from 1, as Z11), z,
    and working (every product of the window and the filter, the bias, and their sum)."""
    volume, stack, bias, _ = _conv_inputs(volume, filters, bias)
    stride, padding = _positive_int(stride, "stride"), _whole(padding, "padding")
    padded = np.pad(volume, ((padding, padding), (padding, padding), (0, 0)))
    output = _convolve(volume, stack, bias, stride, padding)
    k, h, w, _ = stack.shape
    rows = {"filter": [], "row": [], "col": [], "z": [], "working": []}
    for f in range(k):
        for i in range(output.shape[0]):
            for j in range(output.shape[1]):
                window = padded[i * stride:i * stride + h, j * stride:j * stride + w, :]
                terms = [f"{_number(x)}*{_number(v)}" for x, v in zip(window.ravel(), stack[f].ravel())]
                rows["filter"].append(f + 1)
                rows["row"].append(i + 1)
                rows["col"].append(j + 1)
                rows["z"].append(float(output[i, j, f]))
                rows["working"].append(" + ".join(terms + ([_number(bias[f])] if bias[f] else []))
                                       + f" = {_number(output[i, j, f], brackets=False)}")
    return pa.table(rows)


def max_pool(values, size: int = 2, stride: int | None = None) -> np.ndarray:
    """The largest value of each size x size window, moving by stride (default: size, windows that do not overlap),
    channel by channel. values: H x W or H x W x C. Returns the pooled array (same number of dimensions)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ImagesAsDataError(f"max_pool() takes an H x W or H x W x C array, not {array.ndim} dimensions")
    size = _positive_int(size, "size")
    stride = size if stride is None else _positive_int(stride, "stride")
    grid = array if array.ndim == 3 else array[:, :, None]
    out_h, out_w = _output_size(grid.shape[0], size, stride, "height"), _output_size(grid.shape[1], size, stride, "width")
    out = np.empty((out_h, out_w, grid.shape[2]))
    for i in range(out_h):
        for j in range(out_w):
            out[i, j] = grid[i * stride:i * stride + size, j * stride:j * stride + size].max(axis=(0, 1))
    return out if array.ndim == 3 else out[:, :, 0]


def pooling_steps(values, size: int = 2, stride: int | None = None) -> pa.Table:
    """Return max_pool()'s working for an H x W array: one row per output cell — row, col (from 1), window (its values)
    and output (their maximum)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ImagesAsDataError("pooling_steps() shows one channel: give an H x W array")
    size = _positive_int(size, "size")
    stride = size if stride is None else _positive_int(stride, "stride")
    pooled = max_pool(array, size, stride)
    rows = {"row": [], "col": [], "window": [], "output": []}
    for i in range(pooled.shape[0]):
        for j in range(pooled.shape[1]):
            window = array[i * stride:i * stride + size, j * stride:j * stride + size]
            rows["row"].append(i + 1)
            rows["col"].append(j + 1)
            rows["window"].append(", ".join(_number(v) for v in window.ravel()))
            rows["output"].append(float(pooled[i, j]))
    return pa.table(rows)


# ---------------------------------------------------------------------------------------------- helpers

def _conv_inputs(volume, filters, bias):
    volume = np.asarray(volume, dtype=np.float64)
    if volume.ndim == 2:
        volume = volume[:, :, None]
    if volume.ndim != 3:
        raise ImagesAsDataError(f"the input must be H x W or H x W x C, not {volume.ndim}-dimensional")
    channels = volume.shape[2]
    stack = np.asarray(filters, dtype=np.float64)
    # one filter: h x w (one channel) or h x w x C; several: K x h x w (one channel) or K x h x w x C
    if stack.ndim == 2 or (stack.ndim == 3 and channels > 1 and stack.shape[2] == channels):
        stack, single = stack[None], True
    else:
        single = False
    if stack.ndim == 3:
        stack = stack[..., None]
    if stack.ndim != 4 or stack.shape[3] != channels:
        raise ImagesAsDataError(f"the filter(s) {' x '.join(map(str, np.asarray(filters).shape))} do not fit an input "
                                f"with {channels} channel(s): a filter is h x w x {channels}")
    if stack.shape[1] > volume.shape[0] or stack.shape[2] > volume.shape[1]:
        raise ImagesAsDataError(f"the filter ({stack.shape[1]} x {stack.shape[2]}) is larger than the input "
                                f"({volume.shape[0]} x {volume.shape[1]}); add padding or use a smaller filter")
    bias = np.asarray(bias, dtype=np.float64).ravel()
    bias = np.repeat(bias, stack.shape[0]) if bias.size == 1 else bias
    if bias.size != stack.shape[0]:
        raise ImagesAsDataError(f"{stack.shape[0]} filters need {stack.shape[0]} biases, not {bias.size}")
    return volume, stack, bias, single


def _output_size(length: int, window: int, stride: int, what: str) -> int:
    if window > length or (length - window) % stride:
        raise ImagesAsDataError(f"a window of {window} moving by {stride} does not tile a {what} of {length}: "
                                f"(input - window) / stride = ({length} - {window}) / {stride} must be a whole number")
    return (length - window) // stride + 1


def _activation_name(name) -> str:
    name = str(name).lower()
    if name not in ACTIVATIONS:
        raise ImagesAsDataError(f"activation {name!r}: choose one of {', '.join(ACTIVATIONS)}"
                                + did_you_mean(name, ACTIVATIONS))
    return name


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ImagesAsDataError(f"{setting(name, value)} must be a whole number of at least 1",
                                what="option", option=name, value=value)
    return int(value)


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ImagesAsDataError(f"{setting(name, value)} must be a whole number of at least 0",
                                what="option", option=name, value=value)
    return int(value)


def _number(value, brackets: bool = True) -> str:
    """A number as a person writes it: whole numbers without decimals, at most 4 decimals, negatives in brackets
    inside a sum."""
    value = float(value)
    text = f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if text in ("-0", ""):
        text = "0"
    return f"({text})" if value < 0 and brackets else text
