"""Turn a user's ``--device`` choice into a torch device, or fail with one clear line."""

from __future__ import annotations

import torch

from .errors import DeviceError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``auto|cpu|cuda|cuda:N|mps``.

    ``auto`` picks CUDA, then MPS, then CPU. Asking for an accelerator that is not
    present raises :class:`DeviceError` instead of silently falling back.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} was asked for, but CUDA is not available on this machine (use --device cpu or auto)")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("--device mps was asked for, but Apple MPS is not available on this machine")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}: choose one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The reduced-precision dtype to run the model in on ``device`` (None = full fp32).

    ``auto`` uses bf16 on CUDA devices that support it, fp16 on other GPUs, fp32 on CPU.
    """
    if precision == "fp32" or device.type == "cpu":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16
