"""Peer check: anomalib's GANomaly and PaDiM side by side with ours, on the same ELPV images at 64 px.
Each of our GAN methods can be put beside its nearest anomalib model (``--methods``): anomalib
has no GAN but GANomaly, which is measured once and is every GAN method's peer.

It installs nothing. Where ``import anomalib`` fails it says in one line how to run it (a scratch
virtual environment with anomalib 2.x and this project) and exits 0. Where it imports, for each
method and each side (ours through the ``Trainer`` and the ``Predictor``; anomalib's through its
``Engine`` with the model's defaults):

* training images/s on 1 and 2 threads: one epoch each (PaDiM's one pass), the images after the
  first batch over the time they took (ours from the Trainer's progress events, anomalib's from a
  Lightning callback at the end of each training batch);
* batch-1 inference ms: a test image already in memory to its score, median of ``--calls`` calls
  after 5 not timed (ours: ``Predictor.predict`` without a reconstruction; anomalib's: the image as
  its RGB float tensor through the model's pre-processor and network, in eval mode);
* batch-1 GFLOP: the convolutions and matrix products of one such call (``torch.utils.flop_counter``,
  multiply-adds count 2), and the rate they ran at: with both at the same rate, the quicker call is
  the one with less arithmetic, not less overhead;
* image AUROC on the same test split (the ELPV copy's test/good and test/defect), the scores of
  each side's network ranked by the same ``engine.metrics.auroc``; GANomaly trained ``--epochs``
  epochs on 2 threads for it, PaDiM the 2-thread fit.

Not the same in both, on purpose (each side's defaults): ours trains gray images and keeps 10 %
of the good ones out to calibrate its threshold; anomalib's trains RGB copies of all of them,
GANomaly with its own widths and latent size, PaDiM on ImageNet ResNet-18 features (timm fetches
the weights on first use; ours: MobileNetV2's, installed). anomalib's data loader runs in the main
process (``num_workers=0``), as ours reads its images before training.

Run here with anomalib 2.7.0 (GANomaly; PaDiM needs timm's ResNet-18 download, which the VM
cannot make): the figures are in bench/RESULTS.md, "Training speed".

    python -m venv /tmp/peer && /tmp/peer/bin/pip install "anomalib>=2,<3" -e . elpv-dataset
    /tmp/peer/bin/python bench/peer.py [--epochs 15] [--methods ganomaly,padim]
    /tmp/peer/bin/python bench/peer.py --epochs 0 --methods ganomaly,skip-ganomaly,bigan   # speed only
    /tmp/peer/bin/python bench/peer.py --epochs 0 --methods ganomaly --bf16                # ours in float32 and bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, apply_threads, command_line, default_out, describe_machine, finish, format_table, machine_info, write_results
from gpu_check import rate_after_first

SIZE = 64
THREADS = (1, 2)
# each of ours beside its nearest anomalib model: anomalib has no other GAN than GANomaly
PEER = {"ganomaly": "ganomaly", "padim": "padim", "skip-ganomaly": "ganomaly", "inpaint-skip-ganomaly": "ganomaly",
        "seg-skip-ganomaly": "ganomaly", "bigan": "ganomaly", "patch-ganomaly": "ganomaly", "tl-ganomaly": "ganomaly",
        "transgan": "ganomaly"}
METHODS = ("ganomaly", "padim")
ANOMALIB_CLASS = {"ganomaly": "Ganomaly", "padim": "Padim"}
HOW_TO = ("anomalib is not importable here: run bench/peer.py in a scratch venv with it, e.g. python -m venv /tmp/peer && "
          "/tmp/peer/bin/pip install 'anomalib>=2,<3' -e . elpv-dataset && /tmp/peer/bin/python bench/peer.py")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy in MVTec layout, made if missing (default bench/out/elpv)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, of {', '.join(PEER)} (default ganomaly,padim); each beside its anomalib peer")
    parser.add_argument("--epochs", type=int, default=15,
                        help="GANomaly's epochs for the AUROC, both sides (default 15: ours' default; 0: speed only, no AUROC)")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size, both sides (default 32: both defaults)")
    parser.add_argument("--calls", type=int, default=50, help="batch-1 inference calls timed (default 50)")
    parser.add_argument("--bf16", action="store_true",
                        help="also train ours with bfloat16 autocast (on a CPU with bfloat16 instructions), as 'inspector bf16'")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/out/peer-<time>.json)")
    return parser.parse_args(argv)


def median_ms(score, image: np.ndarray, calls: int) -> float:
    """Median wall time of ``score(image)`` in ms, after 5 calls not timed."""
    for _ in range(5):
        score(image)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        score(image)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def call_gflop(score, image: np.ndarray) -> float | None:
    """GFLOP of one ``score(image)`` call; None where the counter cannot follow it (TransGAN's
    latent search calls ``autograd.grad``)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with counter:
            score(image)
    except RuntimeError:
        return None
    return counter.get_total_flops() / 1e9


class Ours:
    """Our method through the Trainer and the Predictor (the app's only paths)."""

    def __init__(self, method: str, dataset, batch_size: int, bf16: bool = False) -> None:
        self.method, self.paths, self.batch_size, self.bf16 = method, [s.path for s in dataset.train], batch_size, bf16
        self.name = "inspector bf16" if bf16 else "inspector"

    def train(self, epochs: int) -> tuple[object, float | None]:
        from inspector.engine.events import TrainProgress
        from inspector.engine.trainer import TrainConfig, Trainer

        stamps: list[tuple[float, int]] = []

        def on_event(event) -> None:
            if isinstance(event, TrainProgress) and event.phase == "train":
                stamps.append((time.perf_counter(), event.step * self.batch_size))

        config = TrainConfig(method=self.method, image_size=SIZE, epochs=epochs, batch_size=self.batch_size, device="cpu",
                             bf16=self.bf16)
        bundle = Trainer(config, on_event=on_event).fit(self.paths)
        return bundle, rate_after_first(stamps)

    def scorer(self, bundle):
        from inspector.engine.predictor import Predictor

        predictor = Predictor(bundle, "cpu")
        return lambda image: predictor.predict(image, reconstruct=False).score


class Anomalib:
    """anomalib's model of the same name with its defaults (64 px pre-processor), through its Engine."""

    name = "anomalib"

    def __init__(self, method: str, dataset, batch_size: int) -> None:
        self.method, self.root, self.batch_size = method, Path(dataset.root), batch_size

    def train(self, epochs: int) -> tuple[object, float | None]:
        import anomalib.models
        from anomalib.data import Folder
        from anomalib.engine import Engine
        from lightning.pytorch.callbacks import Callback

        stamps: list[tuple[float, int]] = []

        class BatchTimer(Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                done = stamps[-1][1] if stamps else 0
                stamps.append((time.perf_counter(), done + len(batch.image)))

        cls = getattr(anomalib.models, ANOMALIB_CLASS[self.method])
        model = cls(pre_processor=cls.configure_pre_processor(image_size=(SIZE, SIZE)))
        datamodule = Folder(name="elpv", root=self.root, normal_dir="train/good", normal_test_dir="test/good",
                            abnormal_dir="test/defect", train_batch_size=self.batch_size, eval_batch_size=self.batch_size,
                            num_workers=0, val_split_mode="same_as_test")  # the test split stays whole
        with tempfile.TemporaryDirectory(prefix="peer-anomalib-") as work:
            # PaDiM sets its own single epoch; no validation: the AUROC is computed here, from raw scores
            engine = Engine(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[BatchTimer()], default_root_dir=work,
                            limit_val_batches=0, enable_progress_bar=False)
            engine.fit(model=model, datamodule=datamodule)
        return model.eval(), rate_after_first(stamps)

    def scorer(self, model):
        import torch

        def score(image: np.ndarray) -> float:
            rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
            x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255).unsqueeze(0)
            with torch.no_grad():
                return float(model.model(model.pre_processor(x)).pred_score.reshape(-1)[0])

        return score


def compare(method: str, side, test: list[tuple[np.ndarray, int]], args) -> dict:
    from inspector.engine import metrics

    row: dict = {"method": method, "side": side.name}
    model = None
    for threads in THREADS:
        apply_threads(threads)
        model, row[f"train_t{threads}"] = side.train(1)
        row[f"infer_ms_t{threads}"] = median_ms(side.scorer(model), test[0][0], args.calls)
    row["infer_gflop"] = call_gflop(side.scorer(model), test[0][0])
    row["infer_gflops"] = row["infer_gflop"] / (row["infer_ms_t1"] / 1000) if row["infer_gflop"] else None
    if args.epochs > 0:
        if method != "padim" and args.epochs != 1:  # PaDiM's one pass is its whole training: the 2-thread fit is it
            model, _ = side.train(args.epochs)
        score = side.scorer(model)
        row["auroc"] = metrics.auroc([label for _, label in test], [score(image) for image, _ in test])
    auroc = f"; image AUROC {row['auroc']:.3f}" if "auroc" in row else ""
    print(f"[{method} {side.name}] train " + ", ".join(f"{row[f'train_t{t}'] or float('nan'):.1f} img/s on {t} thread(s)" for t in THREADS)
          + "; batch 1 " + ", ".join(f"{row[f'infer_ms_t{t}']:.1f} ms on {t}" for t in THREADS)
          + (f" ({row['infer_gflop']:.2f} GFLOP, {row['infer_gflops']:.0f} GFLOP/s on 1)" if row["infer_gflop"] else "") + auroc, flush=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import anomalib
    except ImportError:
        print(HOW_TO)
        return 0
    from inspector.data import read_image
    from inspector.data.datasets import DEFECT, GOOD
    from quality import open_data

    command = command_line()
    dataset = open_data(args.data)
    test = [(read_image(s.path), int(s.label == DEFECT)) for s in dataset.test if s.label in (GOOD, DEFECT)]
    machine = machine_info("cpu")
    print(f"command: {command}")
    print(describe_machine(machine), f"\nanomalib {anomalib.__version__}; ELPV {len(dataset.train)} good training images, "
          f"test {sum(1 - y for _, y in test)} good + {sum(y for _, y in test)} defect, {SIZE} px\n", flush=True)
    rows, errors = [], {}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        if method not in PEER:
            raise SystemExit(f"unknown method {method!r}: choose of {', '.join(PEER)}")
    # anomalib first (each peer once), so a run cut short still has the figures every ratio needs
    sides = [Anomalib(m, dataset, args.batch_size) for m in dict.fromkeys(PEER[m] for m in methods)]
    sides += [Ours(m, dataset, args.batch_size, bf16) for m in methods for bf16 in ((False, True) if args.bf16 else (False,))]
    for side in sides:
        try:
            rows.append(compare(side.method, side, test, args))
        except Exception as e:  # noqa: BLE001 — one side failing must not cost the others' figures
            print(f"[{side.method} {side.name}] FAILED: {type(e).__name__}: {e}", flush=True)
            errors[f"{side.method} {side.name}"] = f"{type(e).__name__}: {e}"
    peers = {r["method"]: r for r in rows if r["side"] == "anomalib"}
    for row in rows:  # ours against its peer: how many times anomalib's training rate, how many times quicker a call
        peer = peers.get(PEER[row["method"]]) if row["side"] != "anomalib" else None
        if peer:
            row["train_x"] = (row["train_t1"] or float("nan")) / (peer["train_t1"] or float("nan"))
            row["infer_x"] = peer["infer_ms_t1"] / row["infer_ms_t1"]
    columns = [("method", "method"), ("side", "side")]
    columns += [(f"train_t{t}", f"train img/s {t}t") for t in THREADS] + [(f"infer_ms_t{t}", f"b1 ms {t}t") for t in THREADS]
    columns += [("infer_gflop", "b1 GFLOP"), ("infer_gflops", "b1 GFLOP/s 1t"), ("auroc", "image AUROC")]
    columns += [("train_x", "train x peer 1t"), ("infer_x", "b1 x peer 1t")]
    print()
    print(format_table(rows, columns))
    out = write_results(args.out or default_out("peer"), {
        "benchmark": "peer", "command": command, "machine": machine, "anomalib": anomalib.__version__, "size": SIZE,
        "settings": {k: v for k, v in vars(args).items() if k != "out"}, "results": rows, "errors": errors,
    })
    return finish(errors, out, command)


if __name__ == "__main__":
    raise SystemExit(main())
