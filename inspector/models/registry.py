"""Methods by name. Adding a method is one folder plus one line here.

Modules are imported only when a method is asked for, so listing methods stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

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
    "patchcore": "inspector.models.patchcore",
    "padim": "inspector.models.padim",
}

#: what `inspector train`, the Train page and the demo use unless told otherwise: tied for the best
#: on ELPV, within a few points of the best on bench/generality.py's other sets, fitted in about a
#: minute on a CPU, and the least thrown by moved parts (bench/shift.py; bench/RESULTS.md)
DEFAULT_METHOD = "patchcore"


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


def create_meta_model(name: str, **options) -> AnomalyModel:
    """``create_model`` on the meta device: every parameter and buffer with its shape and dtype and
    no memory, so a model file's tensors can be checked against its settings before anything is
    allocated. Initialisers are skipped (there are no values), as are the ops whose meta kernels
    are written in Python: their first use imports sympy and torch's compiler (seconds)."""
    with torch.device("meta"), _ShapesOnly():
        return create_model(name, **options)


_VALUE_ONLY = {"normal_", "uniform_", "zero_", "fill_", "copy_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
               "xavier_normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "orthogonal_", "bernoulli_", "random_"}
_ELEMENTWISE = {"mul", "__mul__", "__rmul__", "add", "__add__", "__radd__", "sub", "__sub__", "__rsub__", "div", "__truediv__"}
_RANDOM = {"randn", "rand"}


class _ShapesOnly(TorchFunctionMode):
    """Inside ``torch.device("meta")``: answers initialisers, random factories, ``eye``, ``repeat``
    and elementwise arithmetic on meta tensors from shapes alone; everything else passes through."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        values = (*args, *kwargs.values())
        tensors = [a for a in values if isinstance(a, torch.Tensor)]
        meta = bool(tensors) and all(t.is_meta for t in tensors)
        if name in _VALUE_ONLY and meta:
            return tensors[0]
        if name in _ELEMENTWISE and meta and all(isinstance(a, (torch.Tensor, int, float)) for a in args) and len(args) == 2 and not kwargs:
            dtype = tensors[0].dtype
            for t in tensors[1:]:
                dtype = torch.promote_types(dtype, t.dtype)
            if any(isinstance(a, float) for a in args) and not dtype.is_floating_point:
                dtype = torch.get_default_dtype()
            return torch.empty(_broadcast([tuple(t.shape) for t in tensors]), dtype=dtype, device="meta")
        if name == "repeat" and meta and len(tensors) == 1 and not kwargs:
            sizes = args[1:] if len(args) != 2 or isinstance(args[1], int) else tuple(args[1])
            shape = (1,) * (len(sizes) - args[0].dim()) + tuple(args[0].shape)
            return torch.empty(tuple(s * r for s, r in zip(shape, sizes)), dtype=args[0].dtype, device="meta")
        if not tensors and kwargs.get("device") in (None, "meta") and not kwargs.get("out"):
            if name == "eye" and args and all(isinstance(a, int) for a in args):
                return _empty((args[0], args[1] if len(args) > 1 else args[0]), kwargs)
            if name in _RANDOM and args and "generator" not in kwargs:
                size = tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
                if all(isinstance(s, int) for s in size):
                    return _empty(size, kwargs)
        return func(*args, **kwargs)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """numpy's broadcasting rule (``torch.broadcast_shapes`` pulls in sympy on first use)."""
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*((1,) * (rank - len(s)) + s for s in shapes)):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise RuntimeError(f"shapes {shapes} do not broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _empty(size: tuple[int, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    dtype = kwargs.get("dtype") or torch.get_default_dtype()
    return torch.empty(size, dtype=dtype, device="meta", requires_grad=bool(kwargs.get("requires_grad", False)))
