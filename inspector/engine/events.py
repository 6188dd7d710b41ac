"""Progress events and cancellation: plain objects, so the GUI, CLI and tests all listen the same way."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable


class Cancelled(Exception):
    """Raised inside long work when its CancelToken was set."""


class CancelToken:
    """Thread-safe flag checked by long work every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass
class TrainProgress:
    epoch: int  # 1-based
    epochs: int
    step: int  # global step, 1-based
    steps: int  # total steps of the run
    losses: dict[str, float]
    images_per_s: float
    eta_s: float
    phase: str = "train"  # train | calibrate | done
    message: str = ""


@dataclass
class Progress:
    """Generic progress of a finite job (scoring a folder, evaluation)."""

    done: int
    total: int
    message: str = ""
    extra: dict = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]
