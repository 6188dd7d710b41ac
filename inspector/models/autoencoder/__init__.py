"""Convolutional autoencoder baseline (as in a master's thesis on patch-wise and transfer-learning GANomaly)."""

from inspector.models.autoencoder.model import Autoencoder as Model

__all__ = ["Model"]
