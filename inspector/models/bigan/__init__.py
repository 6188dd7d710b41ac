"""BiGAN / ALI with a Wasserstein critic, after the GANspection project (Donahue et al., ICLR 2017; Dumoulin et al., ICLR 2017)."""

from inspector.models.bigan.model import BiGan as Model

__all__ = ["Model"]
