"""Training, scoring, metrics, thresholds, model files and the registry (no Qt here)."""
