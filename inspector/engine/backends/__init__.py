"""Runtime backends: what runs a model's network, behind the one ``Predictor``.

``torch`` runs a trained model (``.inspector`` file) and is what training uses; ``onnxruntime``
and ``openvino`` run an exported model (``engine/exported.py``) without torch. Every backend
takes the same float input and returns the same arrays, so preprocessing, post-processing and
the decision stay the predictor's, byte for byte, whatever runs the network.
"""

from __future__ import annotations

import importlib.util

from inspector.engine.backends.base import Backend, BackendError, Scored

EXPORTED_RUNTIMES = ("onnxruntime", "openvino")  # what runs an export (a trained model runs on torch)


def installed(runtime: str) -> bool:
    """Whether ``runtime``'s package can be imported here (without importing it)."""
    return importlib.util.find_spec(runtime) is not None


__all__ = ["EXPORTED_RUNTIMES", "Backend", "BackendError", "Scored", "installed"]
