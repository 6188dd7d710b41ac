"""Device choice and thread limits: CUDA, then Apple MPS, then CPU; overridable by name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is not available is an error."""
    import torch  # here, not at the top: a runtime-only install (no torch) imports this module for limit_threads

    preference = (preference or "auto").lower()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA GPU is available (use --device cpu or auto)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("MPS was requested but is not available on this machine")
    return device


def device_label(device: torch.device) -> str:
    """Human-readable name, e.g. 'cuda (NVIDIA H100)' or 'cpu (2 threads)'."""
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def limit_threads(threads: int | None = None) -> int:
    """Keep torch and OpenCV from oversubscribing small machines (INSPECTOR_THREADS overrides).

    One core is left to the window, the camera and the OS: torch's OpenMP threads spin-wait,
    and on a 2-core machine two of them next to any other busy thread run ~100× slower.
    """
    import cv2

    threads = threads or int(os.environ.get("INSPECTOR_THREADS", "0")) or max(1, (os.cpu_count() or 1) - 1)
    try:
        import torch
    except ImportError:  # a runtime-only install: ONNX Runtime and OpenVINO take their thread count from the session
        pass
    else:
        torch.set_num_threads(threads)
    cv2.setNumThreads(1)
    return threads
