"""Where and in what precision the network runs: device "auto" picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib

import torch

from ..errors import ImagesAsDataError

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
        raise ImagesAsDataError(f"device={device!r} but no CUDA GPU is visible to torch; use device='auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImagesAsDataError("device='mps' but Apple's Metal backend is not available; use device='auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ImagesAsDataError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'mps'") from None


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32, bf16 or fp16. "auto" is mixed precision on a GPU (bf16 where supported, else fp16), fp32 elsewhere."""
    precision = str(precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ImagesAsDataError(f"precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ImagesAsDataError("precision='fp16' is for GPUs; on the CPU use 'bf16' or 'fp32'")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "mps":
        return "fp16"
    return "fp32"


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
