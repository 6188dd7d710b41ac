"""``--self-test``: prove an installed or bundled app works end to end in a few seconds.

Loads Qt (offscreen), torch and OpenCV, trains a tiny model on generated parts, scores a
planted defect and a good part, and checks the data folders exist. Prints OK or the failure.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def run() -> int:
    from inspector.runtime_selftest import report

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    return report(_checks)


def _checks() -> list[str]:
    import cv2
    import numpy as np
    import torch
    from PySide6 import QtCore
    from PySide6.QtWidgets import QApplication, QLabel

    from inspector import __version__
    from inspector.data.images import write_image
    from inspector.data.synthetic import paint_defect
    from inspector.engine import paths
    from inspector.engine.predictor import Predictor
    from inspector.engine.trainer import TrainConfig, Trainer
    from inspector.models.components.pretrained import find_weights, where_looked

    app = QApplication.instance() or QApplication(sys.argv[:1])
    label = QLabel("inspector self-test")
    label.resize(200, 40)
    if label.grab().isNull():
        raise RuntimeError("Qt could not render a widget")
    folders = [paths.data_dir(), paths.cache_dir(), paths.log_dir(), paths.config_dir()]

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    parts = [np.clip(120 + 40 * np.sin(xx / 3 + rng.uniform(0, 0.3)) + rng.normal(0, 3, (32, 32)), 0, 255).astype(np.uint8) for _ in range(24)]
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, part in enumerate(parts):
            files.append(Path(tmp) / f"part{i}.png")
            write_image(files[-1], part)
        config = TrainConfig(
            method="ganomaly", image_size=32, epochs=15, batch_size=8, device="cpu", params={"width": 8, "nz": 16, "score_mode": "reconstruction"})
        bundle = Trainer(config).fit(files)
    predictor = Predictor(bundle, "cpu")
    defect, _ = paint_defect(parts[0], rng, kind="blob", scale=2.0)
    good_score, bad_score = (p.score for p in predictor.predict_batch([parts[1], defect]))
    if not (np.isfinite(good_score) and bad_score > good_score):
        raise RuntimeError(f"a planted defect did not score above a good part ({bad_score:.4g} <= {good_score:.4g})")
    del app
    weights = find_weights("mobilenet_v2")  # checks the packaged file's hash
    return [
        f"inspector {__version__}",
        f"Qt {QtCore.qVersion()} ({os.environ['QT_QPA_PLATFORM']}), torch {torch.__version__}, OpenCV {cv2.__version__}",
        f"model: good part {good_score:.4g} < planted defect {bad_score:.4g} (threshold {predictor.threshold:.4g})",
        f"ImageNet MobileNetV2 weights: {weights if weights else 'none (' + where_looked('mobilenet_v2') + ')'}",
        "data folders: " + ", ".join(str(f) for f in folders),
    ]
