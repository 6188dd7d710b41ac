"""Inpainting Skip-GANomaly: Skip-GANomaly recast as masked image completion (the variant of an MSc
project on car damage detection, City, University of London, 2022)."""

from inspector.models.inpaint_skip_ganomaly.model import InpaintSkipGanomaly as Model

__all__ = ["Model"]
