"""Device and numeric precision choice, made once per run (never a global device)."""

from __future__ import annotations

import contextlib

import torch


def select_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the CUDA device of this rank when there is one, else the CPU."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    return torch.device(preference)


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
