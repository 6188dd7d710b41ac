"""Shared test setup: headless Qt, a throw-away INSPECTOR_HOME and the app's main window."""

import contextlib
import gc
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("INSPECTOR_THREADS", "1")  # tests share 2 cores; see engine.device.limit_threads


def pytest_configure(config):
    import torch

    torch.set_num_threads(int(os.environ["INSPECTOR_THREADS"]))


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():
    """The app switches Python's automatic cycle collection off (see inspector.gui.gc_guard) and
    collects from its event loop; between tests no loop runs, so collect here, on this thread."""
    yield
    if not gc.isenabled():
        gc.collect()


@pytest.fixture
def tmp_home(tmp_path, monkeypatch):
    """Point INSPECTOR_HOME at a fresh temp folder so tests never touch the real one."""
    home = tmp_path / "inspector-home"
    home.mkdir()
    monkeypatch.setenv("INSPECTOR_HOME", str(home))
    return home


@contextlib.contextmanager
def main_window(qtbot, **start):
    """The app's main window, shown and started (``start``: MainWindow.start's options) with its
    methods listed; closed after, without asking."""
    from inspector.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    w.start(**start)
    qtbot.waitUntil(lambda: w.methods_ready, timeout=30000)
    try:
        yield w
    finally:
        w.confirm_close = False
        w.close()


@pytest.fixture
def window(qtbot, tmp_home):
    with main_window(qtbot) as w:
        yield w


def mobilenet_file(path, seed: int = 0):
    """A random MobileNetV2 saved under torchvision's keys (with a classifier), as torchvision's file
    is; returns the network."""
    import torch

    from inspector.models.components.mobilenet import MobileNetV2

    torch.manual_seed(seed)
    reference = MobileNetV2()
    state = reference.state_dict() | {"classifier.1.weight": torch.zeros(1000, 1280), "classifier.1.bias": torch.zeros(1000)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return reference


def make_part(rng, size: int = 64):
    """A synthetic 'good part': a bright ring on a textured background, with small pose and lighting jitter."""
    import cv2
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = 90 + 20 * np.sin(xx / 3.0 + rng.uniform(0, 0.5)) * np.sin(yy / 3.0)
    centre = (int(size / 2 + rng.integers(-2, 3)), int(size / 2 + rng.integers(-2, 3)))
    image = cv2.circle(image, centre, size // 4, float(rng.uniform(190, 210)), max(2, size // 12))
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def parts_dir(tmp_path_factory):
    """A flat folder of 40 good synthetic parts (64 px)."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(0)
    for i in range(40):
        cv2.imwrite(str(folder / f"part_{i:02d}.png"), make_part(rng))
    return folder


@pytest.fixture(scope="session")
def tiny_bundle(parts_dir):
    """A GANomaly trained briefly at 32 px on the synthetic parts (shared by tests that only score)."""
    from inspector.data.images import list_images
    from inspector.engine.trainer import TrainConfig, Trainer

    config = TrainConfig(
        method="ganomaly", image_size=32, epochs=40, batch_size=8, device="cpu", params={"width": 16, "nz": 32, "score_mode": "reconstruction"})
    return Trainer(config).fit(list_images(parts_dir))


def planted_blob_check(bundle):
    """Score 12 good synthetic parts and 12 with a painted blob through the Predictor.

    Returns (image AUROC, share of defect maps hotter inside the mask than outside,
    share of defect maps whose maximum lies inside the mask).
    """
    import numpy as np

    from inspector.data.synthetic import paint_defect
    from inspector.engine import metrics
    from inspector.engine.predictor import Predictor

    predictor = Predictor(bundle, "cpu")
    rng = np.random.default_rng(123)
    good = [make_part(rng) for _ in range(12)]
    defects = [paint_defect(make_part(rng), rng, kind="blob", scale=1.5) for _ in range(12)]
    good_scores = [p.score for p in predictor.predict_batch(good)]
    bad = predictor.predict_batch([d for d, _ in defects])
    auroc = metrics.auroc([0] * 12 + [1] * 12, good_scores + [p.score for p in bad])
    inside = [p.anomaly_map[m > 0].mean() > p.anomaly_map[m == 0].mean() for p, (_, m) in zip(bad, defects)]
    peaks = [p.anomaly_map[m > 0].max() >= p.anomaly_map.max() for p, (_, m) in zip(bad, defects)]
    return auroc, float(np.mean(inside)), float(np.mean(peaks))
