"""The ONNX Runtime backend: an exported model's ONNX graphs on the CPU (or CUDA when its
provider is installed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.engine.backends.base import BackendError, Scored
from inspector.engine.device import thread_count

if TYPE_CHECKING:
    from inspector.engine.exported import ExportedModel


class OnnxRuntimeBackend:
    runtime = "onnxruntime"

    def __init__(self, model: ExportedModel, device: Any = "auto", threads: int | None = None) -> None:
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # errors come back as exceptions, in one line; not as log noise too

        if model.format != "onnx":
            raise BackendError(f"{model.path}: ONNX Runtime runs onnx exports, this one is {model.format}")
        available = ort.get_available_providers()
        wanted = str(device or "auto").lower()
        if wanted.startswith("cuda") and "CUDAExecutionProvider" not in available:
            raise BackendError("CUDA was requested but ONNX Runtime has no CUDA provider here (pip install onnxruntime-gpu)")
        use_cuda = wanted.startswith("cuda") or (wanted == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = thread_count(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        try:
            self.sessions = {name: ort.InferenceSession(str(model.graph(name)), options, providers=providers)
                             for name in ("score", "full")}
        except Exception as e:  # noqa: BLE001 — a damaged graph file: one line naming it
            raise BackendError(f"{model.path}: ONNX Runtime cannot load the graphs ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        self.device = "cuda" if use_cuda else "cpu"
        self.one_at_a_time = model.export.get("batch") == 1

    def score(self, batch: np.ndarray, reconstruct: bool = True) -> Scored:
        if self.one_at_a_time and len(batch) > 1:
            return joined([self.score(batch[i : i + 1], reconstruct) for i in range(len(batch))])
        session = self.sessions["full" if reconstruct else "score"]
        outputs = session.run(None, {"input": np.ascontiguousarray(batch, dtype=np.float32)})
        return scored(outputs, reconstruct)


def scored(outputs: list[np.ndarray], reconstruct: bool) -> Scored:
    """Graph outputs (score, map[, reconstruction in [-1, 1]]) as the predictor takes them."""
    from inspector.engine.preprocess import array_to_uint8

    recon = array_to_uint8(outputs[2]) if reconstruct else None
    return Scored(np.asarray(outputs[0], np.float32).reshape(-1), np.asarray(outputs[1], np.float32), recon)


def joined(parts: list[Scored]) -> Scored:
    """Batch-1 results (a graph traced at batch 1) as one batch's."""
    recons = [p.reconstructions for p in parts]
    return Scored(np.concatenate([p.scores for p in parts]), np.concatenate([p.maps for p in parts]),
                  None if recons[0] is None else np.concatenate(recons))

