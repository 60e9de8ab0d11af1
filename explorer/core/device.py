"""Choosing the compute device: CUDA, then Apple MPS, then CPU."""
from __future__ import annotations

import itertools

import torch


def pick_device(prefer: str = "auto") -> torch.device:
    """Return the device to run on. ``prefer`` is "auto", "cpu", "cuda" or "mps"."""
    prefer = (prefer or "auto").lower()
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if prefer in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    if prefer not in ("auto", "cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {prefer!r}: use auto, cpu, cuda or mps")
    if prefer in ("cuda", "mps"):
        raise RuntimeError(f"{prefer} was requested but is not available on this machine")
    return torch.device("cpu")


def describe_device(device: torch.device) -> str:
    """A short human description, e.g. 'CUDA (NVIDIA H100)' or 'CPU (2 threads)'."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "MPS (Apple GPU)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors, so callers can suggest a smaller input."""
    if isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def device_of(model: "torch.nn.Module") -> torch.device:
    """Where the model's parameters (or buffers) live; CPU for a model without either."""
    return model_device_dtype(model)[0]


def model_device_dtype(model: "torch.nn.Module") -> tuple[torch.device, torch.dtype]:
    """(device, floating dtype) of the model's first floating parameter or buffer; (CPU, float32) without one."""
    first = None
    # Lazily: the first floating tensor is usually the first parameter (building both lists took ~1 ms a call).
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
        first = first or tensor
    return (first.device if first is not None else torch.device("cpu")), torch.float32
