"""The `device` setting of runs and commands: cpu, cuda, cuda:N, or auto (the GPU where torch sees one)."""

import os

import torch


def device_problem(name: str) -> str | None:
    """Why `name` cannot be used here (one line), or None when it can."""
    if name == "auto":
        return None
    try:
        device = torch.device(name)
    except RuntimeError:  # not a device torch can parse
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        return f"device must be cpu, cuda, cuda:N or auto, got {name!r}"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"device={name}: torch {torch.__version__} sees no CUDA GPU here (use device=cpu or device=auto)"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"device={name}: torch sees {torch.cuda.device_count()} GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}"
    return None


def resolve_device(name: str) -> torch.device:
    """The torch device of a checked `device` setting. On a GPU, torch is asked for deterministic
    kernels (and cuBLAS for its fixed workspace, before its first use), so a run killed and resumed
    reaches the same weights as one that was not."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    return device
