"""Make the runtime bundle's self-test set with the workstation install (torch): a tiny model
trained on generated parts, its ONNX export, good and defect images, and what torch says of each.

Usage: python packaging/selftest_set.py DEST    (DEST must not exist; about 15 s on a CPU)

DEST holds ``model.inspector`` (the trained model), ``export/`` (``inspector export``'s folder),
``images/`` (good_*.png, defect_*.png and their labels.csv) and ``expected.json``: each image's torch score and
decision and the score tolerance, the export's stored parity bound on this model's scale.
``inspector --self-test`` of the runtime bundle (``inspector/runtime_selftest.py``) checks that
the export scores the images as torch did; ``tests/test_runtime_only.py`` starts from this set too.
Why torch's answer is made here, at build time: a line PC has no torch to ask.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from inspector.data.images import write_image
from inspector.data.synthetic import paint_defect
from inspector.engine.export import export, score_scale
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer

SIZE = 64
CHECK_PARTS = 6  # good and defect images each


def part(rng: np.random.Generator) -> np.ndarray:
    """A generated good part: a bright ring on a textured background, with small pose and lighting jitter."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = 90 + 20 * np.sin(xx / 3.0 + rng.uniform(0, 0.5)) * np.sin(yy / 3.0)
    centre = (int(SIZE / 2 + rng.integers(-2, 3)), int(SIZE / 2 + rng.integers(-2, 3)))
    image = cv2.circle(image, centre, SIZE // 4, float(rng.uniform(190, 210)), SIZE // 12)
    return np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)


def make(dest: Path) -> dict:
    """Write the set into ``dest`` (a new folder); returns expected.json's content."""
    dest.mkdir(parents=True)
    rng = np.random.default_rng(0)
    training = dest / "training"
    training.mkdir()
    files = []
    for i in range(32):
        files.append(training / f"part_{i:02d}.png")
        write_image(files[-1], part(rng))
    config = TrainConfig(method="ganomaly", image_size=32, epochs=30, batch_size=8, device="cpu",
                         params={"width": 16, "nz": 32, "score_mode": "reconstruction"})
    bundle = Trainer(config).fit(files)
    bundle.info.name, bundle.info.version = "selftest", 1  # named as a registered model is: verdicts say which model judged
    bundle.save(dest / "model.inspector")
    exported = export(bundle, dest / "export", "onnx", images=[part(rng) for _ in range(8)]).model

    images = dest / "images"
    images.mkdir()
    checks = {f"good_{i}.png": part(rng) for i in range(CHECK_PARTS)}
    checks |= {f"defect_{i}.png": paint_defect(part(rng), rng, kind="blob", scale=3.0)[0] for i in range(CHECK_PARTS)}
    for name, image in checks.items():
        write_image(images / name, image)  # PNG: the runtime reads back these very pixels
    # the folder is also an evaluation set (inspector eval EXPORT images/: the test split, all but good_0)
    (images / "labels.csv").write_text("path,label,split\n" + "".join(
        f"{name},{'good' if name.startswith('good') else 'defect'},{'train' if name == 'good_0.png' else 'test'}\n"
        for name in checks), encoding="utf-8")
    predictor = Predictor(bundle, "cpu")
    predictions = dict(zip(checks, predictor.predict_batch(list(checks.values()))))
    decisions = {name: p.decision for name, p in predictions.items()}
    if set(decisions.values()) != {"OK", "NG"}:
        raise RuntimeError(f"the self-test set must hold OK and NG parts, got {decisions}")
    scores = [p.score for p in predictions.values()]
    scale = score_scale(predictor.threshold, scores)  # the bound export.py held the export to, on its scale
    expected = {
        "model": bundle.info.ref,
        "threshold": predictor.threshold,
        "score_tolerance": exported.parity["bound"]["score"] * scale,
        "images": {name: {"score": p.score, "decision": p.decision} for name, p in predictions.items()},
    }
    (dest / "expected.json").write_text(json.dumps(expected, indent=1), encoding="utf-8")
    return expected


if __name__ == "__main__":
    if len(sys.argv) != 2 or Path(sys.argv[1]).exists():
        sys.exit("usage: python packaging/selftest_set.py DEST (a folder that does not exist yet)")
    result = make(Path(sys.argv[1]))
    print(f"self-test set: {sys.argv[1]} ({result['model']}, threshold {result['threshold']:.4g})")
