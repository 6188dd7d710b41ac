"""The model file: one safetensors file with the weights (no executable code) and JSON metadata.

Everything needed to score with a model travels with it: method and hyper-parameters, input
size and normalisation, the threshold and how it was chosen, the anomaly-map display scale,
metrics, training-data fingerprint, version and parent version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from inspector import __version__
from inspector.atomic import write_bytes_atomic
from inspector.engine.threshold import Threshold
from inspector.models import AnomalyModel, create_model

MODEL_SUFFIX = ".inspector"
FORMAT_VERSION = 1
_META_KEY = "inspector"


class ModelFileError(Exception):
    """A model file that cannot be read (missing, truncated, not ours, or from an unknown method)."""


@dataclass
class ModelInfo:
    method: str
    config: dict[str, Any]
    threshold: Threshold
    normalisation: dict[str, Any] = field(default_factory=dict)
    map_scale: dict[str, float] = field(default_factory=lambda: {"low": 0.0, "high": 1.0})
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    version: int = 0
    parent: str | None = None  # "name@vN" of the model this one came from
    created: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    app_version: str = __version__
    format_version: int = FORMAT_VERSION
    notes: str = ""

    @property
    def image_size(self) -> int:
        return int(self.config["image_size"])

    @property
    def channels(self) -> int:
        return int(self.config["channels"])

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}" if self.name else "(unregistered)"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["threshold"] = self.threshold.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelInfo":
        d = dict(d)
        d["threshold"] = Threshold.from_dict(d["threshold"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class ModelBundle:
    """A trained model and its metadata."""

    model: AnomalyModel
    info: ModelInfo

    def save(self, path: Path | str) -> Path:
        """Write atomically; the weights are saved from CPU copies so any device works."""
        path = Path(path)
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.model.state_dict().items()}
        data = save_tensors(tensors, metadata={_META_KEY: json.dumps(self.info.to_dict())})
        write_bytes_atomic(path, data)
        return path

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> "ModelBundle":
        path = Path(path)
        info = read_info(path)
        try:
            model = create_model(info.method, **info.config)
        except KeyError as e:
            raise ModelFileError(f"{path}: {e.args[0]}") from None
        try:
            state = load_tensors(path.read_bytes())
            model.load_state_dict(state, strict=True)
        except Exception as e:  # noqa: BLE001 — any failure here means the file is unusable
            raise ModelFileError(f"{path}: weights do not match method '{info.method}': {e}") from None
        model.to(device).eval()
        return cls(model, info)


def read_info(path: Path | str) -> ModelInfo:
    """Metadata only, without loading weights (fast: the registry lists models with it)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # noqa: BLE001
        raise ModelFileError(f"{path}: not a readable model file ({e})") from None
    if _META_KEY not in meta:
        raise ModelFileError(f"{path}: not an inspector model file")
    info = ModelInfo.from_dict(json.loads(meta[_META_KEY]))
    if info.format_version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: written by a newer inspector (format {info.format_version})")
    return info
