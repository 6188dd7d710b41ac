"""What the train page offers (Qt-free): every registered method, the devices, the presets.

Methods come from the core's registry; one whose package fails to import is still listed,
disabled, with the reason. Importing them loads torch, so this runs in a worker.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# edited in the main form; every other Config field goes to the "method parameters" box
FORM_FIELDS = ("image_size", "channels", "lr", "beta1", "beta2")

PRESETS = ("Quick check", "Standard", "Thorough")


@dataclass
class MethodChoice:
    name: str
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    train_defaults: dict[str, int] = field(default_factory=dict)  # the method's own (AnomalyModel.train_defaults)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # each numeric option's allowed range
    error: str | None = None
    fit_only: bool = False  # fitted in one pass over the good images (PatchCore, PaDiM): no epochs

    @property
    def available(self) -> bool:
        return self.error is None

    @property
    def params(self) -> dict[str, Any]:
        """Defaults of the method's own options (not the shared form fields)."""
        return {k: v for k, v in self.defaults.items() if k not in FORM_FIELDS}

    def preset(self, name: str) -> dict[str, Any]:
        """Image size, epochs, batch size and parameter changes of a preset, from this method's defaults."""
        size = int(self.defaults.get("image_size", 64))
        if self.fit_only:  # one pass whatever the preset; only the resolution changes
            return {"image_size": min(size, 64) if name == "Quick check" else size, "epochs": 1, "batch_size": 32, "params": {}}
        if name == "Quick check":
            values = {"image_size": min(size, 64), "epochs": 5, "batch_size": 32, "params": {}}
            if "width" in self.defaults:
                values["params"]["width"] = max(8, int(self.defaults["width"]) // 2)
            return values
        if name == "Thorough":
            return {"image_size": max(size, 128), "epochs": 40, "batch_size": 32, "params": {}}
        return {"image_size": size, **self.train_defaults, "params": {}}


def describe_methods() -> list[MethodChoice]:
    from inspector.models import get_method, method_names
    from inspector.models.base import option_range

    choices = []
    for name in method_names():
        try:
            cls = get_method(name)
            defaults = dataclasses.asdict(cls.Config())
            ranges = {k: r for k in defaults if (r := option_range(cls.Config, k)) is not None}
            choices.append(MethodChoice(name, cls.description or name, defaults, dict(cls.train_defaults), ranges, fit_only=bool(cls.fit_only)))
        except Exception as e:  # noqa: BLE001 — a method being written may fail in any way
            choices.append(MethodChoice(name, error=f"{type(e).__name__}: {e}"))
    return choices


def device_choices() -> list[tuple[str, str]]:
    """(value for TrainConfig.device, label) — the GPU is named when there is one."""
    import torch

    devices = []
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        devices.append(("auto", f"Automatic (GPU: {names[0]})"))
        devices += [(f"cuda:{i}", f"GPU {i}: {n}") for i, n in enumerate(names)]
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(("auto", "Automatic (Apple GPU)"))
        devices.append(("mps", "Apple GPU (MPS)"))
    else:
        devices.append(("auto", "Automatic (CPU: no GPU found)"))
    devices.append(("cpu", "CPU"))
    return devices


def warm_up(report=None, cancel=None) -> tuple[list[MethodChoice], list[tuple[str, str]]]:
    """Import torch and the methods once, off the UI thread; set torch's thread count."""
    from inspector.engine.device import limit_threads

    limit_threads()
    return describe_methods(), device_choices()
