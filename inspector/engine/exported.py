"""An exported model: a folder that ONNX Runtime or OpenVINO scores without torch.

``inspector export`` (``engine/export.py``) writes it; this module reads it and needs neither
torch nor the methods' code. The folder holds:

* ``inspector.json``: ``{"export": {...}, "model": {...}}``: the model file's metadata as it was
  (threshold and how it was chosen, normalisation, map scale, region rules, alignment, tiling,
  method and version) and what the export adds: its format and precision, the graphs, the input,
  and the parity measured against the torch model when it was written;
* two graphs of the same network: ``score`` (image score and anomaly map) and ``full`` (and the
  reconstruction), so scoring on the line never pays for a reconstruction nobody looks at:
  ``score.onnx`` / ``full.onnx``, or ``score.xml``/``.bin`` and ``full.xml``/``.bin`` for OpenVINO.

Preprocessing, tiling, alignment, post-processing and the decision are the predictor's, the same
code for every runtime. ``EXPORT_FORMAT`` is the folder's own version; a newer one is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.engine.backends import EXPORTED_RUNTIMES, Backend, BackendError, installed
from inspector.engine.bundle import ModelFileError, ModelInfo
from inspector.text import shown

EXPORT_FORMAT = 1  # the newest exported-folder format this reader loads
META_FILE = "inspector.json"
FORMATS = ("onnx", "openvino")
PRECISIONS = ("fp32", "int8")
GRAPHS = ("score", "full")
MAX_META_BYTES = 4 << 20
# which runtimes run which format: OpenVINO reads ONNX too
RUNTIMES_OF = {"onnx": ("onnxruntime", "openvino"), "openvino": ("openvino",)}


def is_exported(ref: str | Path) -> bool:
    """Whether ``ref`` names an exported model (a folder holding ``inspector.json``)."""
    try:
        path = Path(ref)
        return path.is_dir() and (path / META_FILE).is_file()
    except (OSError, ValueError):
        return False


def graph_file(fmt: str, graph: str) -> str:
    """The file a graph is stored in (for OpenVINO the ``.xml``; its ``.bin`` lies beside it)."""
    return f"{graph}.onnx" if fmt == "onnx" else f"{graph}.xml"


@dataclass
class ExportedModel:
    path: Path
    info: ModelInfo
    export: dict[str, Any]  # format, precision, input, parity, source, created, ...

    @property
    def format(self) -> str:
        return self.export["format"]

    @property
    def precision(self) -> str:
        return self.export["precision"]

    @property
    def parity(self) -> dict[str, Any]:
        return self.export.get("parity", {})

    def graph(self, name: str) -> Path:
        return self.path / graph_file(self.format, name)

    @classmethod
    def load(cls, path: str | Path) -> "ExportedModel":
        """The folder's metadata, checked as a model file's is; the graphs are only opened by a backend."""
        path = Path(path)
        meta_path = path / META_FILE
        try:
            if meta_path.stat().st_size > MAX_META_BYTES:
                raise ModelFileError(f"{path}: {META_FILE} is larger than any export writes")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(f"{path}: not an exported model (no {META_FILE})") from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ModelFileError(f"{path}: {META_FILE} cannot be read ({type(e).__name__})") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("export"), dict) or "model" not in meta:
            raise ModelFileError(f"{path}: not an exported model ({META_FILE} has no 'export' and 'model')")
        export = meta["export"]
        version = export.get("export_format")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ModelFileError(f"{path}: export_format must be a whole number >= 1, got {shown(version)}")
        if version > EXPORT_FORMAT:
            raise ModelFileError(f"{path}: exported-model format {version} is newer than this inspector reads "
                                 f"(1..{EXPORT_FORMAT}): open it with the inspector that exported it")
        if export.get("format") not in FORMATS or export.get("precision") not in PRECISIONS:
            raise ModelFileError(f"{path}: unknown export format {shown(export.get('format'))} "
                                 f"or precision {shown(export.get('precision'))}")
        info = ModelInfo.from_dict(meta["model"], source=str(path), settings=False)
        for key in ("image_size", "channels"):
            value = info.config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ModelFileError(f"{path}: the model's {key} must be a whole number, got {shown(value)}")
        model = cls(path, info, export)
        for name in GRAPHS:
            if not model.graph(name).is_file():
                raise ModelFileError(f"{path}: the {name} graph ({graph_file(model.format, name)}) is missing")
        return model

    def runtimes(self) -> list[str]:
        """The runtimes installed here that run this export, in ``RUNTIMES_OF``'s order."""
        return [r for r in RUNTIMES_OF[self.format] if installed(r)]

    def backend(self, device: Any = "auto", runtime: str = "auto", threads: int | None = None) -> Backend:
        """A backend for this export: ``runtime`` by name, or with ``auto`` the fastest of those
        installed here (measured once per machine and export, then remembered: ``runtime_choice``)."""
        if runtime == "torch":
            raise BackendError(f"{self.path} is an exported model: it runs on {' or '.join(RUNTIMES_OF[self.format])}, not torch")
        if runtime != "auto" and runtime not in EXPORTED_RUNTIMES:
            raise BackendError(f"unknown runtime {shown(runtime)}; choose one of auto, {', '.join(EXPORTED_RUNTIMES)}")
        choices = self.runtimes()
        if runtime != "auto":
            if runtime not in RUNTIMES_OF[self.format]:
                raise BackendError(f"{self.path} is a {self.format} export: {runtime} cannot run it")
            if runtime not in choices:
                raise BackendError(f"{runtime} is not installed: pip install {runtime}")
            return open_backend(self, runtime, device, threads)
        if not choices:
            raise BackendError(f"no runtime for this {self.format} export is installed: "
                               f"pip install {' or '.join(RUNTIMES_OF[self.format])}")
        if len(choices) == 1:
            return open_backend(self, choices[0], device, threads)
        from inspector.engine.runtime_choice import fastest

        return fastest(self, choices, device, threads)

    def summary(self) -> dict[str, Any]:
        """What ``inspector models show`` prints of the export beside the model's metadata."""
        keys = ("format", "precision", "source", "created", "exported_by", "parity")
        return {k: self.export[k] for k in keys if k in self.export}


def parity_lines(parity: dict[str, Any]) -> list[str]:
    """The parity an export stored, in a few lines: one home for ``inspector export``,
    ``inspector models show`` and the app's Models page."""
    if not isinstance(parity, dict) or not isinstance(parity.get("runtimes"), dict) or not parity["runtimes"]:
        return ["no parity stored"]
    try:
        return _parity_lines(parity)
    except (KeyError, TypeError, ValueError, AttributeError):  # a hand-edited file: the verdicts do not depend on it
        return ["the stored parity cannot be read"]


def _parity_lines(parity: dict[str, Any]) -> list[str]:
    lines = [f"parity on {parity['good_images']} held-out good images and {parity['synthetic_defects']} synthetic defects "
             f"(torch AUROC {parity['torch_auroc']:.4f}):"]
    for runtime, r in parity["runtimes"].items():
        lines.append(f"  {runtime:22s} {r['flips']} flip(s), score diff {r['max_score_diff']:.3g} ({r['max_score_diff_relative']:.2g} of scale), "
                     f"map diff {r['max_map_diff']:.3g} ({r['max_map_diff_relative']:.2g} of range), AUROC {r['auroc']:.4f}")
    return lines


def open_backend(model: ExportedModel, runtime: str, device: Any = "auto", threads: int | None = None) -> Backend:
    if runtime == "onnxruntime":
        from inspector.engine.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, device, threads)
    from inspector.engine.backends.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(model, device, threads)

