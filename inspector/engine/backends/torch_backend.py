"""The torch backend: a trained ``AnomalyModel`` on CPU, CUDA or MPS."""

from __future__ import annotations

import numpy as np
import torch

from inspector.engine.backends.base import Scored
from inspector.engine.preprocess import to_uint8
from inspector.models.base import AnomalyModel, eval_mode


class TorchBackend:
    runtime = "torch"

    def __init__(self, model: AnomalyModel, device: torch.device) -> None:
        self.model = model.to(device).eval()
        if device.type == "cpu":
            # oneDNN's NHWC kernels: 1.0-1.65x faster scoring at batch 1 (TL-GANomaly's most), up to
            # 1.3x at batch 16; the layout of the weights decides the convolutions' (bench/RESULTS.md)
            self.model.to(memory_format=torch.channels_last)
        self.torch_device = device
        self.device = device.type

    @torch.inference_mode()
    def score(self, batch: np.ndarray, reconstruct: bool = True) -> Scored:
        x = torch.from_numpy(batch).to(self.torch_device, non_blocking=True)
        with eval_mode(self.model):
            out = self.model.score(x, reconstruct=reconstruct)
        recon = out.reconstruction
        return Scored(
            out.image_score.float().cpu().numpy(),
            out.anomaly_map.float().cpu().numpy(),
            to_uint8(recon) if reconstruct and recon is not None else None,
        )
