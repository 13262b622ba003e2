"""Where and in what precision the network runs: precision "auto" and the CPU's bfloat16 support."""

import pytest
import torch

from imagesasdata.model import devices
from imagesasdata.errors import ImagesAsDataError


def write_cpuinfo(path, flags: str):
    path.write_text(f"processor\t: 0\nmodel name\t: test CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    return str(path)


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    assert devices.cpu_has_native_bf16(write_cpuinfo(tmp_path / "a", "fpu sse avx2 avx512f avx512_bf16")) is True
    assert devices.cpu_has_native_bf16(write_cpuinfo(tmp_path / "b", "fpu sse avx2 amx_bf16 amx_tile")) is True
    assert devices.cpu_has_native_bf16(write_cpuinfo(tmp_path / "c", "fpu sse avx2 avx512f avx512bw")) is False
    assert devices.cpu_has_native_bf16(str(tmp_path / "missing")) is None


def test_auto_precision_is_fp32_on_the_cpu_even_with_native_bfloat16(monkeypatch):
    """Measured on an AVX-512-BF16 CPU: bf16 autocast trains EfficientNet-Lite0 slower than fp32."""
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert devices.resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_bfloat16_without_native_support_warns(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="without native bfloat16"):
        assert devices.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ImagesAsDataError, match="fp16' is for GPUs"):
        devices.resolve_precision("fp16", torch.device("cpu"))
