"""GANomaly (Akcay, Atapour-Abarghouei, Breckon; ACCV 2018)."""

from inspector.models.ganomaly.model import Ganomaly as Model

__all__ = ["Model"]
