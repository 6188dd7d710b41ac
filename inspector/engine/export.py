"""``inspector export``: a trained model as ONNX or OpenVINO graphs, with its parity measured and stored.

The network is traced from the torch model twice (``score``: image score and map; ``full``: and
the reconstruction). Everything around the network (resizing, normalisation, tiling, alignment,
map post-processing, decisions) stays the predictor's own code, so it is identical by
construction; what can differ is the network's arithmetic, and that is measured here: the torch
predictor and the exported one score the same parts, the model's held-out good images (found
again from its training folder) and synthetic defects painted on them, through every installed
runtime that runs the export and both graphs. The largest score and map differences and the
number of OK/NG flips are stored in the export (``inspector models show`` prints them), and an
export outside its bound is refused (``ExportRefused``) and leaves nothing behind:

* fp32: no flip, no score moving more than ``FP32_TOLERANCE`` of the model's scale and no map
  more than ``MAP_TOLERANCE`` of its display range;
* int8 (``--int8``, ONNX Runtime's static quantisation calibrated on the good images): flips and
  the change in AUROC are reported; a flip is refused unless forced.

TransGAN is refused: its score is a gradient search of the latent space, a loop of backward
passes that no inference graph holds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from inspector import __version__
from inspector.data.datasets import open_dataset
from inspector.data.images import ImageReadError, read_image
from inspector.data.synthetic import make_defect_set
from inspector.engine import metrics
from inspector.engine.bundle import ModelBundle
from inspector.engine.exported import EXPORT_FORMAT, FORMATS, GRAPHS, META_FILE, RUNTIMES_OF, ExportedModel, graph_file, is_exported
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import holdout_indices

OPSET = 17
FP32_TOLERANCE = 1e-3  # of the model's score scale (its threshold, or its largest score): float32 sums in another order
# of the map's display range: PatchCore's nearest-neighbour distances near 0 differ most (up to 6e-3 on
# 640x480 frames: the same float32 sums in another order, as on another CPU), a heat change no one sees
MAP_TOLERANCE = 1e-2
PARITY_IMAGES = 48  # good images measured (and as many synthetic defects painted on them)
NOT_EXPORTABLE = {
    "transgan": "its score searches the latent space by gradient descent (a loop of backward passes), which no inference graph holds",
}


class ExportRefused(ValueError):
    """An export that cannot be made or that would change verdicts: one line saying why."""


@dataclass
class ExportResult:
    model: ExportedModel
    parity: dict[str, Any]


def export(bundle: ModelBundle, dest: str | Path, fmt: str = "onnx", int8: bool = False,
           images: list[np.ndarray] | None = None, data: str | Path | None = None, force: bool = False) -> ExportResult:
    """Write ``bundle`` to the folder ``dest`` as ``fmt`` (``onnx`` or ``openvino``) with its parity.

    Parity is measured on ``images`` (good parts) when given, else on the model's held-out good
    images read from ``data`` or the training folder the model records. ``force`` replaces an
    existing export at ``dest`` (never any other folder) and accepts an int8 export with flips."""
    if fmt not in FORMATS:
        raise ExportRefused(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    method = bundle.info.method
    if method in NOT_EXPORTABLE:
        raise ExportRefused(f"method '{method}' cannot be exported: {NOT_EXPORTABLE[method]}")
    dest = Path(dest)
    if dest.exists() and not is_exported(dest):
        raise ExportRefused(f"{dest} already exists and is not an exported model: choose another destination")
    if dest.exists() and not force:
        raise ExportRefused(f"{dest} already exists: add --force to replace it")
    good = images if images is not None else held_out_images(bundle, data)
    if len(good) < 2:
        raise ExportRefused("parity needs at least 2 good images of the part: pass --data with the model's training folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    device = next(iter(bundle.model.state_dict().values()), torch.empty(0)).device  # traced and compared on the CPU
    try:
        for batch in ("dynamic", 1):  # a graph whose shapes the trace fixed to its example's batch: batch 1
            _write_graphs(bundle, work, fmt, int8, good, batch)
            meta = {"export": _export_meta(bundle, fmt, int8, batch), "model": bundle.info.to_dict()}
            (work / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if batch == 1 or _runs_batches(ExportedModel.load(work)):
                break
        parity = measure_parity(bundle, ExportedModel.load(work), good)
        meta["export"]["parity"] = parity
        (work / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        problem = _refusal(parity, int8, force)
        if problem:
            raise ExportRefused(problem)
        if dest.exists():  # an export we replace (checked above): moved into a folder of ours first, so a failure keeps one
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.replace(dest, old / dest.name)
            os.replace(work, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(work, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        bundle.model.to(device)  # a model on a GPU (the app's) goes back there
    return ExportResult(ExportedModel.load(dest), parity)


def held_out_images(bundle: ModelBundle, data: str | Path | None = None) -> list[np.ndarray]:
    """The model's held-out good images, found again as training chose them: the readable good
    training images of ``data`` (default: the folder the model was trained on), split with the
    training's seed and hold-out fraction; at most ``PARITY_IMAGES``, evenly spread."""
    training = bundle.info.training or {}
    root = data or training.get("dataset_root")
    if not root:
        raise ExportRefused("the model does not record its training folder: pass --data with good images of the part")
    try:
        dataset = open_dataset(root)
    except ValueError as e:
        raise ExportRefused(f"parity images: {e}") from None
    readable = []
    for sample in dataset.train:
        try:
            readable.append(read_image(sample.path))
        except ImageReadError:
            continue
    config = training.get("config") or {}
    fraction, seed = config.get("holdout_fraction", 0.1), config.get("seed", 0)
    held = [readable[i] for i in holdout_indices(len(readable), float(fraction), int(seed))] if readable else []
    if len(held) > PARITY_IMAGES:
        held = [held[i] for i in np.linspace(0, len(held) - 1, PARITY_IMAGES).round().astype(int)]
    return held


class _Graph(nn.Module):
    """A method's ``score`` as a module with plain tensor outputs, as the exporter traces it."""

    def __init__(self, model: nn.Module, reconstruct: bool) -> None:
        super().__init__()
        self.model, self.reconstruct = model, reconstruct

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.score(x, reconstruct=self.reconstruct)
        return (out.image_score, out.anomaly_map) + ((out.reconstruction,) if self.reconstruct else ())


def _runs_batches(exported: ExportedModel) -> bool:
    """Whether every installed runtime runs the graphs at another batch size than they were traced at."""
    size, channels = exported.info.image_size, exported.info.channels
    try:
        for runtime in exported.runtimes():
            backend = exported.backend("cpu", runtime)
            for reconstruct in (False, True):
                out = backend.score(np.zeros((3, channels, size, size), np.float32), reconstruct)
                if out.scores.shape != (3,):
                    return False
    except Exception:  # noqa: BLE001 — a shape the trace fixed: the runtime refuses the batch
        return False
    return True


def _write_graphs(bundle: ModelBundle, folder: Path, fmt: str, int8: bool, good: list[np.ndarray], batch: int | str) -> None:
    model = bundle.model.to("cpu").eval()
    size, channels = bundle.info.image_size, bundle.info.channels
    example = torch.zeros(2 if batch == "dynamic" else 1, channels, size, size)
    for name in GRAPHS:
        reconstruct = name == "full"
        outputs = ["score", "map"] + (["reconstruction"] if reconstruct else [])
        onnx_path = folder / f"{name}.onnx"
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python values: parity, not warnings, judges the graph
                torch.onnx.export(_Graph(model, reconstruct), (example,), str(onnx_path), input_names=["input"],
                                  output_names=outputs, opset_version=OPSET, dynamo=False,
                                  dynamic_axes={n: {0: "batch"} for n in ["input", *outputs]} if batch == "dynamic" else None)
        except Exception as e:  # noqa: BLE001 — an operator without an ONNX form: say which method and why
            raise ExportRefused(f"method '{bundle.info.method}' does not trace to ONNX: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        if int8:
            _quantise(onnx_path, good, bundle)
        if fmt == "openvino":
            import openvino as ov

            ov.save_model(ov.convert_model(str(onnx_path)), str(folder / graph_file("openvino", name)), compress_to_fp16=False)
            onnx_path.unlink()


def _quantise(onnx_path: Path, good: list[np.ndarray], bundle: ModelBundle) -> None:
    """Static int8 (QDQ: ONNX Runtime and OpenVINO both run it) calibrated on the good images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from inspector.engine.preprocess import resize_to_model, to_array

    inputs = [to_array([resize_to_model(im, bundle.info.image_size, bundle.info.channels)]) for im in good]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"input": x}

    quantised = onnx_path.with_name("int8-" + onnx_path.name)
    quantize_static(str(onnx_path), str(quantised), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    os.replace(quantised, onnx_path)


def measure_parity(bundle: ModelBundle, exported: ExportedModel, good: list[np.ndarray]) -> dict[str, Any]:
    """The torch predictor against the exported one, per runtime installed here and graph, on
    ``good`` and synthetic defects painted on them: largest score and map differences (absolute,
    and relative to the model's scale), OK/NG flips at the model's threshold, and both AUROCs."""
    defects = [d for d, _ in make_defect_set(good, len(good), seed=0)]
    parts = list(good) + defects
    labels = np.r_[np.zeros(len(good)), np.ones(len(defects))]
    reference = Predictor(bundle, "cpu").predict_batch(parts)
    ref_scores = np.array([p.score for p in reference])
    scale = exported.info.map_scale
    score_range = score_scale(exported.info.threshold.value, ref_scores)
    map_scale = max(scale["high"] - scale["low"], 1e-12)
    runtimes: dict[str, Any] = {}
    for runtime in exported.runtimes():
        predictor = Predictor(exported, "cpu", runtime)
        for reconstruct in (False, True):
            try:
                got = predictor.predict_batch(parts, reconstruct=reconstruct)
            except Exception as e:  # noqa: BLE001 — a graph the runtime cannot run: refused, in one line
                raise ExportRefused(f"{runtime} cannot run the exported graph: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
            scores = np.array([p.score for p in got])
            score_diff = float(np.max(np.abs(np.where(np.isfinite(ref_scores), scores - ref_scores, 0.0))))
            map_diff = float(max(np.max(np.abs(a.anomaly_map - b.anomaly_map)) for a, b in zip(got, reference)))
            flips = int(sum(a.decision != b.decision for a, b in zip(got, reference)))
            runtimes[f"{runtime}/{'full' if reconstruct else 'score'}"] = {
                "max_score_diff": score_diff,
                "max_score_diff_relative": score_diff / score_range,
                "max_map_diff": map_diff,
                "max_map_diff_relative": map_diff / map_scale,
                "flips": flips,
                "auroc": metrics.auroc(labels, scores),
            }
    if not runtimes:
        raise ExportRefused(f"parity cannot be measured: no runtime for {exported.format} is installed "
                            f"(pip install {' or '.join(RUNTIMES_OF[exported.format])})")
    return {
        "good_images": len(good), "synthetic_defects": len(defects),
        "torch_auroc": metrics.auroc(labels, ref_scores),
        "bound": {"flips": 0, "score": FP32_TOLERANCE, "map": MAP_TOLERANCE} if exported.precision == "fp32" else {"flips": 0, "forced": False},
        "runtimes": runtimes,
        "max_score_diff_relative": max(r["max_score_diff_relative"] for r in runtimes.values()),
        "max_map_diff_relative": max(r["max_map_diff_relative"] for r in runtimes.values()),
        "flips": max(r["flips"] for r in runtimes.values()),
    }


def score_scale(threshold: float, scores: Any) -> float:
    """What score differences are measured against: the threshold, or the largest finite score
    when that is larger (a model whose threshold is near 0 still has a scale)."""
    finite = np.abs(np.asarray(scores, dtype=float))
    finite = finite[np.isfinite(finite)]
    return max(abs(threshold), float(finite.max(initial=0.0)), 1e-12)


def _refusal(parity: dict[str, Any], int8: bool, force: bool) -> str:
    """Why an export with this parity is refused ("" when it is not)."""
    worst = max(parity["runtimes"], key=lambda r: (parity["runtimes"][r]["flips"], parity["runtimes"][r]["max_score_diff_relative"]))
    w = parity["runtimes"][worst]
    if int8:
        if w["flips"] and not force:
            return (f"int8 changes {w['flips']} verdict(s) of {parity['good_images'] + parity['synthetic_defects']} calibration parts "
                    f"({worst}; AUROC {parity['torch_auroc']:.3f} -> {w['auroc']:.3f}): refused (--force to export anyway)")
        parity["bound"]["forced"] = bool(w["flips"])
        return ""
    if w["flips"] or parity["max_score_diff_relative"] > FP32_TOLERANCE or parity["max_map_diff_relative"] > MAP_TOLERANCE:
        return (f"the exported network does not score as the torch model ({worst}: {w['flips']} flip(s); scores differ by up to "
                f"{parity['max_score_diff_relative']:.2g} of the model's scale (bound {FP32_TOLERANCE:g}), maps by "
                f"{parity['max_map_diff_relative']:.2g} of their range (bound {MAP_TOLERANCE:g})): refused")
    return ""


def _export_meta(bundle: ModelBundle, fmt: str, int8: bool, batch: int | str) -> dict[str, Any]:
    versions = {"inspector": __version__, "torch": torch.__version__}
    for package in ("onnx", "onnxruntime", "openvino"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    size, channels = bundle.info.image_size, bundle.info.channels
    return {
        "export_format": EXPORT_FORMAT,
        "format": fmt,
        "precision": "int8" if int8 else "fp32",
        "graphs": {name: graph_file(fmt, name) for name in GRAPHS},
        "batch": batch,  # "dynamic", or 1: the runtimes score one image at a time
        "input": {"name": "input", "shape": ["batch", channels, size, size], "dtype": "float32", "range": [-1.0, 1.0]},
        "outputs": {"score": ["batch"], "map": ["batch", size, size], "reconstruction": ["batch", channels, size, size]},
        "opset": OPSET,
        "source": bundle.info.ref,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "exported_by": versions,
    }
