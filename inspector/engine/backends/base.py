"""What every runtime backend offers the predictor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class BackendError(RuntimeError):
    """A backend that cannot run here (its package missing, a file it cannot read): one line."""


@dataclass
class Scored:
    """One batch's network outputs, on the CPU as NumPy arrays.

    scores: float32 (B,), higher = more anomalous
    maps: float32 (B, H, W) at the model's input size
    reconstructions: uint8 (B, H, W) gray or (B, H, W, 3) RGB; None when not asked for
    """

    scores: np.ndarray
    maps: np.ndarray
    reconstructions: np.ndarray | None


class Backend(Protocol):
    """Runs a model's network on batches already at its input size."""

    runtime: str  # "torch", "onnxruntime" or "openvino"
    device: str  # where it runs, in words ("cpu", "cuda", "CPU" for OpenVINO ...)

    def score(self, batch: np.ndarray, reconstruct: bool = True) -> Scored:
        """Score a float32 (B, C, H, W) batch in [-1, 1] (``preprocess.to_array``)."""
        ...
