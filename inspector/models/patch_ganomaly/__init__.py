"""Patch-GANomaly (a master's thesis on patch-wise and transfer-learning GANomaly): patch-wise GANomaly with sliding-window, full-resolution maps."""

from inspector.models.patch_ganomaly.model import PatchGanomaly as Model

__all__ = ["Model"]
