"""inspector: visual inspection with GAN anomaly detection."""

__version__ = "0.2.0"  # the one source: pyproject.toml reads it (the model file format has its own number: engine/bundle.py)
