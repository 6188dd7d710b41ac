"""inspector: visual inspection with GAN anomaly detection."""

__version__ = "0.1.0"
