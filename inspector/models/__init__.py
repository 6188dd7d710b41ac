"""Anomaly-detection methods, one package each, behind the interface in ``base``."""

from inspector.models.base import AnomalyModel, ModelConfig, ScoreOutput, StepContext
from inspector.models.registry import DEFAULT_METHOD, create_meta_model, create_model, get_method, method_names

__all__ = [
    "AnomalyModel",
    "ModelConfig",
    "ScoreOutput",
    "StepContext",
    "DEFAULT_METHOD",
    "create_meta_model",
    "create_model",
    "get_method",
    "method_names",
]
