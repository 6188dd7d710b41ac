"""Segmenting Skip-GANomaly: Skip-GANomaly taught to remove painted defects, plus a defect-segmentation head."""

from inspector.models.seg_skip_ganomaly.model import SegSkipGanomaly as Model

__all__ = ["Model"]
