"""Which torch device a command runs on: `--device cpu|cuda|cuda:N|mps|auto`."""

from __future__ import annotations

import contextlib
import platform

import torch

from .errors import UserError


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def pick_device(name: str) -> torch.device:
    """`auto` is a GPU where there is one, else the CPU; a device that is asked for but missing
    is a one-line user error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device '{name}' (use cpu, cuda, cuda:N, mps or auto)")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(f"device '{name}' asked for, but this machine has no CUDA GPU (use --device cpu)")
        if dev.index is not None and dev.index >= count:
            raise UserError(f"device '{name}' asked for, but this machine has {count} CUDA GPU(s)")
    if dev.type == "mps" and not _mps():
        raise UserError(f"device '{name}' asked for, but MPS is not available here (use --device cpu)")
    return dev


def exact_float32(device: torch.device):
    """On CUDA: IEEE float32 convolutions (no TF32, whose 10-bit mantissa moves output pixels)
    and deterministic algorithms (the same output for the same input); elsewhere nothing."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


def hardware(device: torch.device) -> str:
    """What a run trains on, as its records say: the GPU's name, or the CPU and its threads."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda)"
    return f"{platform.machine()} CPU x{torch.get_num_threads()} threads"
