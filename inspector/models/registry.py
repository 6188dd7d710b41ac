"""Methods by name. Adding a method is one folder plus one line here.

Modules are imported only when a method is asked for, so listing methods stays cheap.
"""

from __future__ import annotations

import importlib

from inspector.models.base import AnomalyModel

_METHODS: dict[str, str] = {
    "ganomaly": "inspector.models.ganomaly",
    "skip-ganomaly": "inspector.models.skip_ganomaly",
    "inpaint-skip-ganomaly": "inspector.models.inpaint_skip_ganomaly",
    "seg-skip-ganomaly": "inspector.models.seg_skip_ganomaly",
    "bigan": "inspector.models.bigan",
    "patch-ganomaly": "inspector.models.patch_ganomaly",
    "tl-ganomaly": "inspector.models.tl_ganomaly",
    "autoencoder": "inspector.models.autoencoder",
    "transgan": "inspector.models.transgan",
}

DEFAULT_METHOD = "ganomaly"


def method_names() -> list[str]:
    return list(_METHODS)


def get_method(name: str) -> type[AnomalyModel]:
    """The model class registered as ``name`` (each method package exports ``Model``)."""
    try:
        module = _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method '{name}'; available: {', '.join(_METHODS)}") from None
    return importlib.import_module(module).Model


def create_model(name: str, **options) -> AnomalyModel:
    """Build a method from its name and hyper-parameters (unknown options are an error)."""
    cls = get_method(name)
    return cls(cls.Config.from_dict(options))
