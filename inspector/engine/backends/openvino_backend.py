"""The OpenVINO backend: an exported model's graphs (OpenVINO IR, or ONNX read directly).

Inference precision is pinned to f32: OpenVINO's default on CPUs with bfloat16 (bf16) moved
seg-skip-ganomaly's scores by up to 0.14 and changed their order; an int8 export keeps its
quantised layers whatever the hint."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from inspector.engine.backends.base import BackendError, Scored
from inspector.engine.backends.onnxruntime_backend import joined, scored
from inspector.engine.device import thread_count

if TYPE_CHECKING:
    from inspector.engine.exported import ExportedModel


class OpenVinoBackend:
    runtime = "openvino"

    def __init__(self, model: ExportedModel, device: Any = "auto", threads: int | None = None) -> None:
        import openvino as ov

        wanted = str(device or "auto").lower()
        if wanted not in ("auto", "cpu"):
            raise BackendError(f"the OpenVINO backend runs on the CPU here, not {device}")
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": thread_count(threads), "PERFORMANCE_HINT": "LATENCY"}
        try:
            self.compiled = {name: core.compile_model(str(model.graph(name)), "CPU", config) for name in ("score", "full")}
        except Exception as e:  # noqa: BLE001 — a damaged graph file: one line naming it
            raise BackendError(f"{model.path}: OpenVINO cannot load the graphs ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        self.device = "cpu"
        self.one_at_a_time = model.export.get("batch") == 1
        # idle infer requests per graph: a call takes one (a request serves one call at a time) and
        # gives it back. Not thread-local: those die inside the thread's teardown, where OpenVINO's
        # destructor crashed the interpreter (PySide6's pooled threads).
        self._idle: dict[str, list] = {name: [] for name in self.compiled}
        self._lock = threading.Lock()

    def score(self, batch: np.ndarray, reconstruct: bool = True) -> Scored:
        if self.one_at_a_time and len(batch) > 1:
            return joined([self.score(batch[i : i + 1], reconstruct) for i in range(len(batch))])
        name = "full" if reconstruct else "score"
        with self._lock:
            idle = self._idle[name]
            request = idle.pop() if idle else self.compiled[name].create_infer_request()
        try:
            request.infer({0: np.ascontiguousarray(batch, dtype=np.float32)})
            outputs = [request.get_output_tensor(i).data.copy() for i in range(len(self.compiled[name].outputs))]
        finally:
            with self._lock:
                self._idle[name].append(request)
        return scored(outputs, reconstruct)
