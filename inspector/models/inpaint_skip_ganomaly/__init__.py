"""Inpainting Skip-GANomaly: Skip-GANomaly recast as masked image completion (seed 000's variant)."""

from inspector.models.inpaint_skip_ganomaly.model import InpaintSkipGanomaly as Model

__all__ = ["Model"]
