"""Model parts shared by several methods, so each method folder holds only what is its own.

- ``dcgan``: DCGAN encoder, decoder and discriminator pyramids, the image → vector encoder, DCGAN init;
- ``mobilenet``, ``resnet``: ImageNet backbones with torchvision's state-dict keys;
- ``pretrained``: finding and loading their ImageNet weights (never downloaded);
- ``feature_gaussian``: a Gaussian of good parts' features per position (PaDiM);
- ``patch_features``: frozen ImageNet MobileNetV2 stage features on one grid and the smoothed map (PatchCore, PaDiM);
- ``two_term``: a score of two terms, each in units of its mean on held-out good images;
- ``adversarial``: generator/discriminator helpers (freezing, the BCE loss and step, the reset when D wins, sampling);
- ``ganomaly_core``: GANomaly's encoder–decoder–encoder generator and its loss;
- ``skip_core``: Skip-GANomaly's U-Net, loss, configs and adversarial training, for its variants;
- ``patchwise``: patch geometry and patch-wise GANomaly training and scoring.

Config range checks (``bounded``, ``option_range``, ``check_option``) stay in ``inspector.models.base``:
they are part of ``ModelConfig``'s contract, which every method and the GUI read there.
"""
