"""Device and numeric precision choice, made once per run (never a global device)."""

from __future__ import annotations

import contextlib

import torch

from pipeline.errors import PipelineError


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the CUDA device of this rank when there is one, else the CPU. A device that is not a
    device name, or a CUDA device this host does not have, is a PipelineError naming it."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, ValueError):
        raise PipelineError(f"device {preference!r} is not auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise PipelineError(f"device {preference!r} is not auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise PipelineError(f"device {preference!r}: this host has no CUDA device (use auto or cpu)")
        if device.index is not None and device.index >= count:
            raise PipelineError(f"device {preference!r}: this host has {count} CUDA device(s)")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """Mixed-precision dtype: bf16 (or fp16 on old GPUs) on CUDA with ``auto``; None = full fp32."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
