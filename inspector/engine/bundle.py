"""The model file: one safetensors file with the weights (no executable code) and JSON metadata.

Everything needed to score with a model travels with it: method and hyper-parameters, input
size and normalisation, the threshold and how it was chosen, the anomaly-map display scale,
metrics, training-data fingerprint, version and parent version.

Which files load: the file format has its own whole-number version, ``FORMAT_VERSION``, apart
from the app's version. Every file gets it in its header (``__metadata__["format"]``, and as
``format_version`` in the metadata, where inspector 0.1.0 looks). Files written before 0.2.0
declare no ``format`` in the header: they are format 1, as is a file that declares it nowhere.
Format 2 adds region rules (``rules``, ``engine.regions.RegionRules``) and alignment
(``alignment``, ``engine.align.Alignment``); format 3 adds tiling (``tiling``,
``engine.tiling.Tiling``) and alignment's confidence floor. Each changes decisions, so a file is
written in the oldest format that holds what it carries (``format_for``): an older reader refuses
it rather than ignore what it does not know and mis-judge parts, and a file with none of them is
still format 1, which every reader loads.
This reader loads formats 1 to ``FORMAT_VERSION`` (today: 3) with the
same results as when they were written, and refuses a newer format before reading the rest of
the file, in one line naming the file and both versions. Changing the file's layout or the
meaning of its metadata raises ``FORMAT_VERSION``; methods adapt older weight layouts within a
format in their own load hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from inspector import __version__
from inspector.atomic import write_bytes_atomic
from inspector.engine.modelref import VERSION_MAX, ModelRefError, check_name, ref_text
from inspector.engine.align import Alignment
from inspector.engine.regions import RegionRules
from inspector.engine.threshold import Threshold
from inspector.engine.tiling import Tiling
from inspector.text import first_line, shown

if TYPE_CHECKING:  # torch and the methods load only with a trained model (an exported one needs neither)
    import torch

    from inspector.engine.backends import Backend
    from inspector.models import AnomalyModel

MODEL_SUFFIX = ".inspector"
FORMAT_VERSION = 3  # the newest model file format this reader loads (see the module notes)
_META_KEY = "inspector"
_FORMAT_KEY = "format"  # in the header's __metadata__ (text, as safetensors requires): the file's format
MAX_FILE_BYTES = 1 << 30  # no method's model comes near (TL-GANomaly at 256 px: ~60 MB)
MAX_HEADER_BYTES = 16 << 20  # tensor table + metadata; a real one is a few tens of kB
MAX_TENSORS = 100_000
MAX_WEIGHT_BYTES = MAX_FILE_BYTES - MAX_HEADER_BYTES  # the most weights a model file holds
# safetensors dtype → (torch dtype's name, bytes per element)
_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}


class ModelFileError(Exception):
    """A model file that cannot be used (missing, truncated, not ours, malformed metadata, weights
    that do not fit its method): one line that starts with the file."""


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
    format_version: int = 1  # of the file it was read from; a save writes ``format_for(info)``
    notes: str = ""
    rules: RegionRules | None = None  # region rules (format 2); None: the score alone decides
    alignment: Alignment | None = None  # the reference good part parts are aligned to (format 2, 3 with a floor); None: scored as placed
    tiling: Tiling | None = None  # scored tile by tile (format 3); None: the whole image at the model's input size

    @property
    def image_size(self) -> int:
        return self._option("image_size")

    @property
    def channels(self) -> int:
        return self._option("channels")

    def _option(self, key: str) -> int:
        """An option of the config, or the method's default where the file leaves it out (as the
        network is built: ``Config.from_dict`` fills in defaults)."""
        if key in self.config:
            return int(self.config[key])
        from inspector.models import get_method

        return int(getattr(get_method(self.method).Config, key))

    @property
    def ref(self) -> str:
        return ref_text(self.name, self.version) if self.name else "(unregistered)"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["threshold"] = self.threshold.to_dict()
        d["rules"] = self.rules.to_dict() if self.rules is not None else None
        d["alignment"] = self.alignment.to_dict() if self.alignment is not None else None
        d["tiling"] = self.tiling.to_dict() if self.tiling is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Any, source: str = "model metadata", settings: bool = True) -> "ModelInfo":
        """Checked metadata: anything of the wrong structure, type or range is a ModelFileError
        starting with ``source`` (the file), never a KeyError or TypeError from deep inside.
        Without ``settings`` the method's options are not checked against its code (an exported
        model: its graph is the network, and the method's code need not be installed)."""
        try:
            return cls(**_checked(d, settings))
        except _Bad as e:
            raise ModelFileError(f"{source}: {e}") from None


def _needs(info: ModelInfo) -> list[tuple[str, int]]:
    """What the metadata carries that changes decisions, with the first format that holds it."""
    needs = [("region rules", 2)] if info.rules is not None else []
    if info.alignment is not None:
        needs.append(("an alignment floor", 3) if info.alignment.min_confidence > 0 else ("alignment", 2))
    if info.tiling is not None:
        needs.append(("tiling", 3))
    return needs


def format_for(info: ModelInfo) -> int:
    """The format a save writes: the oldest that holds this metadata, so a file that older
    readers would judge the same stays readable by them."""
    return max([1] + [version for _, version in _needs(info)])


def _newer_format(version: int) -> str:
    return (f"model file format {version} is newer than this inspector ({__version__}) reads "
            f"(formats 1..{FORMAT_VERSION}): written by a newer inspector, open it with that one")


def _file_format(path: Path, header_meta: dict) -> int | None:
    """The format the header declares (None: not declared, as in every file before 0.2.0),
    refused when newer than FORMAT_VERSION: checked before anything else of the file is read."""
    text = header_meta.get(_FORMAT_KEY)
    if text is None:
        return None
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or int(text) < 1:
        raise ModelFileError(f"{path}: its format must be a whole number >= 1, got {shown(text)}")
    if int(text) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: {_newer_format(int(text))}")
    return int(text)


class _Bad(Exception):
    """One problem with the metadata, in words (wrapped into ModelFileError with the file)."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(f"{what} must be a finite number, got {shown(value)}")
    return float(value)




_MAX_DEPTH = 32


def _shallow(value: Any) -> bool:
    """Whether free-form metadata nests at most _MAX_DEPTH levels (copying or printing a deeper
    one can exhaust Python's recursion limit far from here)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return False
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
    return True


def _checked(d: Any, settings: bool = True) -> dict[str, Any]:
    """The ModelInfo fields of metadata ``d`` (unknown keys dropped: a newer file may add some),
    each checked (the method's options only with ``settings``); raises _Bad."""
    if not isinstance(d, dict):
        raise _Bad(f"the metadata must be a JSON object, got {type(d).__name__}")
    for key in ("method", "config", "threshold"):
        if key not in d:
            raise _Bad(f"the metadata has no '{key}'")
    out = {f.name: d[f.name] for f in dataclasses.fields(ModelInfo) if f.name in d}
    version = out.get("format_version", 1)  # files before 0.2.0 declare none: format 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Bad(f"format_version must be a whole number >= 1, got {shown(version)}")
    if version > FORMAT_VERSION:
        raise _Bad(_newer_format(version))
    if out.get("rules") is not None:  # a file's format is checked against its rules in _parse
        try:
            out["rules"] = RegionRules.from_dict(out["rules"])
        except (ValueError, TypeError) as e:
            raise _Bad(f"region rules: {first_line(e)}") from None
    if out.get("alignment") is not None:
        try:
            out["alignment"] = Alignment.from_dict(out["alignment"])
        except ValueError as e:
            raise _Bad(first_line(e)) from None
    if out.get("tiling") is not None:
        try:
            out["tiling"] = Tiling.from_dict(out["tiling"])
        except ValueError as e:
            raise _Bad(first_line(e)) from None
    method = out["method"]
    if not isinstance(out["config"], dict):
        raise _Bad(f"config must be a JSON object, got {type(out['config']).__name__}")
    if settings:
        from inspector.models import get_method, method_names

        if not isinstance(method, str) or method not in method_names():
            raise _Bad(f"unknown method {shown(method)}; available: {', '.join(method_names())}")
        try:  # every option's type and range (a size decides how much memory the network takes)
            get_method(method).Config.from_dict(dict(out["config"]))
        except (ValueError, TypeError) as e:
            raise _Bad(f"settings of method '{method}': {e}") from None
    elif not isinstance(method, str) or not 0 < len(method) <= 64:
        raise _Bad(f"method must be a name, got {shown(method)}")
    t = out["threshold"]
    if not isinstance(t, dict) or "value" not in t:
        raise _Bad("threshold must be a JSON object with a 'value'")
    params, stats = t.get("params", {}), t.get("stats", {})
    if not isinstance(t.get("method"), str) or not isinstance(params, dict) or not isinstance(stats, dict):
        raise _Bad("threshold needs a 'method' (text) and objects for 'params' and 'stats'")
    out["threshold"] = Threshold(_number(t["value"], "threshold"), t["method"], dict(params), dict(stats))
    scale = out.get("map_scale", {"low": 0.0, "high": 1.0})
    if not isinstance(scale, dict) or not {"low", "high"} <= set(scale):
        raise _Bad("map_scale must be a JSON object with 'low' and 'high'")
    low, high = _number(scale["low"], "map_scale low"), _number(scale["high"], "map_scale high")
    if not low < high:
        raise _Bad(f"map_scale low must be below high, got {low:g}..{high:g}")
    out["map_scale"] = {**scale, "low": low, "high": high}
    for key in ("normalisation", "metrics", "training"):
        if key in out and not isinstance(out[key], dict):
            raise _Bad(f"{key} must be a JSON object, got {type(out[key]).__name__}")
    for key in ("normalisation", "metrics", "training", "threshold"):
        if key in out and not _shallow([out[key].params, out[key].stats] if key == "threshold" else out[key]):
            raise _Bad(f"{key} is nested more than {_MAX_DEPTH} levels deep")
    for key in ("created", "app_version", "notes"):
        if key in out and not isinstance(out[key], str):
            raise _Bad(f"{key} must be text, got {shown(out[key])}")
    name = out.get("name", "")
    if name != "":
        try:
            check_name(name)
        except ModelRefError as e:
            raise _Bad(str(e)) from None
    v = out.get("version", 0)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= VERSION_MAX:
        raise _Bad(f"version must be a whole number 0..{VERSION_MAX}, got {shown(v)}")
    parent = out.get("parent")
    if parent is not None and (not isinstance(parent, str) or len(parent) > 200):
        raise _Bad(f"parent must be a model reference or null, got {shown(parent)}")
    return out


@dataclass
class ModelBundle:
    """A trained model and its metadata."""

    model: AnomalyModel
    info: ModelInfo

    def save(self, path: Path | str) -> Path:
        """Write atomically; the weights are saved from CPU copies so any device works.

        The metadata is checked as a reader checks it first, so nothing is saved that cannot be
        loaded: above all no non-finite threshold or map scale (``nan > nan`` is False: every
        defect would pass)."""
        path = Path(path)
        written = format_for(self.info)
        meta = self.info.to_dict() | {"format_version": written}  # what is written, whatever was read
        ModelInfo.from_dict(json.loads(json.dumps(meta)), source=f"{path}: refused to save")
        state = self.model.state_dict()
        size = sum(v.numel() * v.element_size() for v in state.values())
        if size > MAX_WEIGHT_BYTES:
            raise ModelFileError(
                f"{path}: refused to save: the weights take {size / 2**20:.0f} MB, more than a model file may hold "
                f"({MAX_FILE_BYTES >> 20} MB); train with smaller sizes (width, nz, image_size)"
            )
        from safetensors.torch import save as save_tensors

        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
        data = save_tensors(tensors, metadata={_FORMAT_KEY: str(written), _META_KEY: json.dumps(meta)})
        write_bytes_atomic(path, data)
        return path

    @classmethod
    def load(cls, path: Path | str, device: torch.device | str = "cpu") -> "ModelBundle":
        """Metadata checked, then the weights' names, shapes and dtypes in the file's header compared
        with the network its settings build on the meta device (no memory), and only then the
        network built for real and loaded: a file cannot make us allocate what it does not hold."""
        path = Path(path)
        with _opened(path) as f:
            header, size = _read_header(path, f)
            tensors, info = _parse(path, header, size)
            config = dict(info.config)
            if "pretrained_source" in _option_names(info.method) and not config.get("pretrained_source"):
                # the weights come from this file: never look for (or read) ImageNet weights it names
                config["pretrained_source"] = "scratch: not recorded in the model file"
            _check_weights(path, info.method, config, tensors)
            f.seek(0)
            data = f.read(size + 1)
        if len(data) != size or data[: len(header)] != header:
            raise ModelFileError(f"{path}: the file changed while it was read")
        from safetensors.torch import load as load_tensors

        from inspector.models import create_model

        try:
            model = create_model(info.method, **config)
            model.load_state_dict(load_tensors(data), strict=True)
        except Exception as e:  # noqa: BLE001 — checked above; anything left means the file is unusable
            raise ModelFileError(f"{path}: weights do not load into method '{info.method}': {_error_text(e)}") from None
        model.to(device).eval()
        return cls(model, info)

    def backend(self, device: Any = "auto", runtime: str = "auto", threads: int | None = None) -> Backend:
        """The torch backend on ``device`` (a torch.device or a name: ``auto``, ``cpu``, ``cuda`` ...):
        a trained model runs on torch; another runtime needs it exported first. Torch's threads
        are process-wide (``engine/device.py``), not ``threads``."""
        from inspector.engine.backends import BackendError
        from inspector.engine.backends.torch_backend import TorchBackend
        from inspector.engine.device import select_device

        if runtime not in ("auto", "torch"):
            raise BackendError(f"a trained model runs on torch, not {runtime}: export it first (inspector export MODEL DEST --format onnx)")
        return TorchBackend(self.model, device if not isinstance(device, str) else select_device(device))


def read_info(path: Path | str) -> ModelInfo:
    """Metadata only, from the header (fast: the registry lists models with it); checked as
    ``ModelBundle.load`` checks it, including the tensor table and the file's length."""
    path = Path(path)
    with _opened(path) as f:
        header, size = _read_header(path, f)
    return _parse(path, header, size)[1]


def _option_names(method: str) -> set[str]:
    from inspector.models import get_method

    return {f.name for f in dataclasses.fields(get_method(method).Config)}




@contextlib.contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    """``path`` open for reading if it is a regular file (a FIFO would block, a device never
    ends); every OS error while it is read is a ModelFileError naming it."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ModelFileError(f"{path}: not a model file (not a regular file)")
        with path.open("rb") as f:
            yield f
    except FileNotFoundError:
        raise ModelFileError(f"model file not found: {path}") from None
    except OSError as e:
        raise ModelFileError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None


def _read_header(path: Path, f: BinaryIO) -> tuple[bytes, int]:
    """The 8 length bytes and the JSON header of open file ``f``, and the file's size; bounded."""
    size = os.fstat(f.fileno()).st_size
    if size > MAX_FILE_BYTES:
        raise ModelFileError(f"{path}: {size / 2**20:.0f} MB is larger than any model file ({MAX_FILE_BYTES >> 20} MB at most)")
    head = f.read(8)
    n = _header_length(path, head, size)
    body = f.read(n)
    if len(body) != n:
        raise ModelFileError(f"{path}: truncated (the file changed while it was read)")
    return head + body, size


def _header_length(path: Path, head: bytes, size: int) -> int:
    """The safetensors header's length (the first 8 bytes, little-endian), bounded by the file."""
    if len(head) < 8:
        raise ModelFileError(f"{path}: not a model file ({size} bytes)")
    n = int.from_bytes(head[:8], "little")
    if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
        raise ModelFileError(f"{path}: not a model file or truncated (header of {n} bytes in a file of {size})")
    return n


def _parse(path: Path, header: bytes, size: int) -> tuple[dict[str, tuple[str, tuple[int, ...]]], ModelInfo]:
    """Tensor table (name → (dtype, shape)) and checked metadata of a safetensors header
    (``header`` = the 8 length bytes and the JSON), against the file's ``size``."""
    try:
        table = json.loads(header[8:].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFileError(f"{path}: not a model file (its header is not JSON)") from None
    if not isinstance(table, dict):
        raise ModelFileError(f"{path}: not a model file (its header is not a JSON object)")
    meta = table.pop("__metadata__", None)
    declared = _file_format(path, meta) if isinstance(meta, dict) else None  # a newer format: refused before it is parsed
    if not isinstance(meta, dict) or not isinstance(meta.get(_META_KEY), str):
        raise ModelFileError(f"{path}: not an inspector model file (no inspector metadata)")
    if len(table) > MAX_TENSORS:
        raise ModelFileError(f"{path}: {len(table)} tensors, more than any model has")
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans = []
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("dtype"), str) or entry["dtype"] not in _DTYPES:
            raise ModelFileError(f"{path}: tensor {shown(name)} has no dtype this reader knows")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or len(shape) > 8 or not all(type(d) is int and 0 <= d <= 1 << 40 for d in shape):
            raise ModelFileError(f"{path}: tensor {shown(name)} has an invalid shape {shown(shape)}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise ModelFileError(f"{path}: tensor {shown(name)} has invalid data offsets {shown(offsets)}")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPES[entry["dtype"]][1]:
            raise ModelFileError(f"{path}: tensor {shown(name)}'s data does not match its shape {shape}")
        tensors[name] = (entry["dtype"], tuple(shape))
        spans.append((offsets[0], offsets[1]))
    end = 0  # the data is the tensors back to back, to the end of the file: a truncated file fails here
    for begin, stop in sorted(spans):
        if begin != end:
            raise ModelFileError(f"{path}: truncated or damaged (tensor data overlaps or has gaps)")
        end = stop
    if end != size - len(header):
        raise ModelFileError(f"{path}: truncated or damaged ({size - len(header)} bytes of weights, the header says {end})")
    try:
        meta = json.loads(meta[_META_KEY])
    except (ValueError, RecursionError):
        raise ModelFileError(f"{path}: its metadata is not valid JSON") from None
    info = ModelInfo.from_dict(meta, source=str(path))
    if declared is not None:
        info.format_version = declared
    for what, version in _needs(info):
        if info.format_version < version:  # an older reader would drop it
            raise ModelFileError(f"{path}: it holds {what}, which needs model file format {version}; the file says {info.format_version}")
    return tensors, info


def _check_weights(path: Path, method: str, config: dict[str, Any], tensors: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    """The file's tensors against the network ``config`` builds, built on the meta device (shapes
    only, no memory), through the method's own load hooks (a method may adapt an older layout)."""
    import torch

    from inspector.models import create_meta_model

    try:
        model = create_meta_model(method, **config)
    except ValueError as e:
        raise ModelFileError(f"{path}: settings of method '{method}': {e}") from None
    except Exception as e:  # noqa: BLE001 — settings that pass the checks but still cannot build
        raise ModelFileError(f"{path}: method '{method}' cannot be built from its settings ({_error_text(e)})") from None
    fake = {k: torch.empty(shape, dtype=getattr(torch, _DTYPES[dtype][0]), device="meta") for k, (dtype, shape) in tensors.items()}
    try:
        with warnings.catch_warnings():  # a method's load hook may add a real default to the meta state
            warnings.filterwarnings("ignore", message=r".*copying from a non-meta parameter")
            model.load_state_dict(fake, strict=True)
        problem = ""
    except Exception as e:  # noqa: BLE001
        problem = _error_text(e)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(fake))
    unexpected = sorted(set(fake) - set(expected))
    wrong = sorted(k for k in set(expected) & set(fake) if expected[k].shape != fake[k].shape or expected[k].dtype != fake[k].dtype)
    if not problem and not wrong:
        return
    def described(k: str) -> str:
        return f"{k} {tuple(fake[k].shape)} {fake[k].dtype} (expected {tuple(expected[k].shape)} {expected[k].dtype})"

    details = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape or dtype", wrong)):
        if keys and (what == "wrong shape or dtype" or problem):
            listed = ", ".join(described(k) if what.startswith("wrong") else k for k in keys[:3])
            details.append(f"{len(keys)} {what}: {listed}")
    raise ModelFileError(f"{path}: weights do not match method '{method}' with its settings: {'; '.join(details) or problem}")


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {first_line(e, 300)}"
