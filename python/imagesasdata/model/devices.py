"""Where and in what precision the network runs: device "auto" picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
import warnings

import torch

from ..errors import ImagesAsDataError, setting

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(device: str = "auto") -> torch.device:
    """A torch.device for "auto", "cpu", "cuda", "cuda:1" or "mps"; an error if the asked one is missing."""
    name = str(device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ImagesAsDataError(f"{setting('device', device)} but no CUDA GPU is visible to torch; use device='auto' or 'cpu'",
                                what="option", option="device", value=device)
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImagesAsDataError("device='mps' but Apple's Metal backend is not available; use device='auto' or 'cpu'",
                                what="option", option="device", value="mps")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ImagesAsDataError(f"{setting('device', device)} is not a device; use 'auto', 'cpu', 'cuda' or 'mps'",
                                what="option", option="device", value=device) from None


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32, bf16 or fp16. "auto" is mixed precision on a GPU (bf16 where supported, else fp16), fp32 elsewhere.

    On CPUs "auto" stays fp32 even where the CPU computes bfloat16 natively: measured on an AVX-512-BF16 CPU,
    bf16 autocast trained the default EfficientNet-Lite0 at 0.73-0.96× fp32's speed (its depthwise convolutions
    gain nothing; ResNet-18 ran 1.8× faster, but no offline weights let us check its accuracy). Without native
    bfloat16 it is 10-15× slower, so asking for it there draws a warning. See benchmarks/README.md.
    """
    precision = str(precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ImagesAsDataError(f"{setting('precision', precision)}: choose one of {', '.join(PRECISIONS)}",
                                what="option", option="precision", value=precision)
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ImagesAsDataError("precision='fp16' is for GPUs; on the CPU use 'bf16' or 'fp32'",
                                    what="option", option="precision", value="fp16")
        if precision == "bf16" and device.type == "cpu" and cpu_has_native_bf16() is False:
            warnings.warn("precision='bf16' on a CPU without native bfloat16 (no avx512_bf16 or amx_bf16 flag): "
                          "measured 10-15× slower than fp32 on such CPUs; use precision='fp32'", stacklevel=3)
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo"):
    """True when the CPU's flags include AVX-512 BF16 or AMX BF16, False when they do not, None where the flags
    cannot be read (not Linux)."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), None)
    except OSError:
        return None
    if flags is None:
        return None
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def autocast(device: torch.device, precision: str):
    """The autocast context for a precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_channels_last(channels_last, device: torch.device) -> bool:
    """Channels-last memory layout: faster convolutions on GPUs and on CPUs with oneDNN."""
    if channels_last in ("auto", None):
        return device.type in ("cuda", "cpu")
    return bool(channels_last)
