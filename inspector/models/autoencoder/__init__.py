"""Convolutional autoencoder baseline (seed 003)."""

from inspector.models.autoencoder.model import Autoencoder as Model

__all__ = ["Model"]
