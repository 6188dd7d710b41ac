"""Skip-GANomaly (Akçay, Atapour-Abarghouei, Breckon; IJCNN 2019)."""

from inspector.models.skip_ganomaly.model import SkipGanomaly as Model

__all__ = ["Model"]
