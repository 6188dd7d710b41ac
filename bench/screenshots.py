"""Screenshots of every page for the README: the app driven on the ELPV demo data.

Trains a small GANomaly through the Train page, evaluates it, sets and saves a threshold,
then grabs each page (offscreen, about 1280 x 800) into resources/screenshots/<page>.png, plus
the results page in the dark theme. Uses a throw-away INSPECTOR_HOME. Takes a few minutes
on a 2-core CPU.

    INSPECTOR_THREADS=1 python bench/screenshots.py [--epochs 6] [--out resources/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "screenshots")
    parser.add_argument("--home", type=Path, help="INSPECTOR_HOME to use (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="load solar-cells@v1 from --home instead of training (no train.png)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["INSPECTOR_HOME"] = str(args.home or tempfile.mkdtemp(prefix="inspector-shots-"))

    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QApplication

    from inspector.data.elpv import materialise_elpv
    from inspector.engine.demo import demo_data_dir
    from inspector.gui.app import apply_theme, create_application, setup_logging
    from inspector.gui.main_window import MainWindow

    setup_logging()
    app = create_application(theme="light")
    dataset = materialise_elpv(demo_data_dir())
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    window.start(data=str(dataset.root))

    def wait(condition, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit(f"timed out waiting for {what}")
            app.processEvents()
            time.sleep(0.02)

    def settle(seconds: float = 0.4) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    def grab(name: str) -> None:
        settle()
        image = window.grab().toImage()
        path = args.out / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(path), "PNG", 0)  # 0 = smallest file
        print(f"{path} ({path.stat().st_size // 1024} KiB)", flush=True)

    wait(lambda: window.methods_ready, 120, "the methods")
    train = window.train_page
    if args.reuse:
        from inspector.gui.workers import active_jobs

        wait(lambda: not any(j.title.startswith("Loading model") for j in active_jobs()), 60, "the last model")
        job = window.session.load_model("solar-cells@v1")
        wait(lambda: job.outcome, 60, "the model")
    else:
        train.select_method("ganomaly")
        train.set_form(image_size=64, epochs=args.epochs, batch_size=32, params={"width": 32, "nz": 64}, name="solar-cells")
        window.show_page("train")
        train.start()
        print("training (the slow part) ...", flush=True)
        wait(lambda: not train.is_running(), 3600, "the training")
        if window.session.predictor is None:
            raise SystemExit(f"training failed: {train.status.text()}")
        grab("train")

    window.evaluate()
    wait(lambda: window.evaluate_page.scoreset is not None, 600, "the evaluation")
    result = window.evaluate_page.scoreset
    import numpy as np

    window.session.set_threshold(float(np.quantile(result.good_scores(), 0.9)))  # a 10 % false-alarm budget
    grab("evaluate")

    window.show_page("data")
    page = window.data_page
    page.filter.setCurrentIndex(page.filter.findData("test"))  # scored test images: labels and OK/NG marks
    wait(lambda: not page.model.loading(), 300, "the thumbnails")
    grab("data")

    scores = dict(zip(result.names, result.scores))
    worst = max((s for s in window.session.samples() if s.label == 1), key=lambda s: scores.get(s.path.name, -1))
    window.show_page("results")
    window.results_page.sort.setCurrentIndex(1)
    window.results_page.select_path(worst.path)
    wait(lambda: window.results_page.view.prediction is not None, 60, "the prediction")
    grab("results")
    apply_theme(app, "dark")
    grab("results-dark")
    apply_theme(app, "light")

    window.save_threshold()
    window.show_page("models")
    wait(lambda: window.models_page.tree.topLevelItemCount() > 0 and not window.models_page.list_job.running, 60, "the model list")
    window.models_page.select("solar-cells@v2")
    grab("models")
    window.confirm_close = False
    window.close()
    window.deleteLater()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return 0


if __name__ == "__main__":
    sys.exit(main())
