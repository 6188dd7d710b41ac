"""Patch-GANomaly (seed 003): patch-wise GANomaly with sliding-window, full-resolution maps."""

from inspector.models.patch_ganomaly.model import PatchGanomaly as Model

__all__ = ["Model"]
