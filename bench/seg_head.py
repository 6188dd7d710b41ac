"""seg-skip-ganomaly's segmentation head alone on ELPV: a fast bench for the head's training recipe.

The method's own training views, head update and defect map (``painted_views``, ``head_step``,
``defect_map``) and its top-fraction image score, without the generator updates (the head never
reads the generator), so a recipe can be tried at about half the method's cost. The
training cells are the Trainer's (the same 10 % held out); the test split is scored at the model
size as the Predictor does, and AUROC is printed on its two fixed halves (choose on a, report b)
after every quarter of the run. What it finds must be confirmed through the method
(``bench/quality.py``); see inspector/models/seg_skip_ganomaly/README.md.

    INSPECTOR_THREADS=1 python bench/seg_head.py --epochs 12 --gain-jitter 0.2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT_DIR, apply_threads, command_line, default_out, describe_machine, format_table, machine_info, write_results
from quality import _halves, open_data


FRACTIONS = (0.01, 0.05, 0.25, 1.0)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=OUT_DIR / "elpv", help="ELPV copy in MVTec layout, made if missing")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--head-width", type=int, default=16)
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="the U-Net head from scratch, not the ImageNet one")
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--gain-jitter", type=float, default=0.2)
    parser.add_argument("--defect-rate", type=float, default=0.5)
    parser.add_argument("--max-defects", type=int, default=2)
    parser.add_argument("--kinds", default="crack,region,blob", help="comma-separated defect kinds painted")
    parser.add_argument("--top-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = command_line()
    apply_threads(args.threads)

    import numpy as np
    import torch

    from inspector.data import read_image
    from inspector.data.datasets import DEFECT, GOOD
    from inspector.engine import metrics
    from inspector.engine.preprocess import resize_to_model, to_tensor
    from inspector.engine.trainer import TrainConfig, Trainer
    from inspector.models import StepContext, create_model
    from inspector.models.base import eval_mode, top_fraction_mean

    dataset = open_data(args.data)
    print(f"command: {command}\n{describe_machine(machine_info('cpu'))}", flush=True)
    torch.manual_seed(args.seed)
    trainer = Trainer(TrainConfig(method="ganomaly", image_size=args.image_size, seed=args.seed, device="cpu"))
    images, _ = trainer._load([s.path for s in dataset.train])
    data = to_tensor(trainer._split(images)[0])
    samples = [s for s in dataset.test if s.label in (GOOD, DEFECT)]
    labels = np.array([s.label for s in samples])
    test = to_tensor([resize_to_model(read_image(s.path), args.image_size, 1) for s in samples])
    halves = _halves(samples, labels)

    model = create_model(
        "seg-skip-ganomaly", image_size=args.image_size, pretrained=args.pretrained, head_width=args.head_width, head_lr=args.head_lr,
        head_schedule=args.schedule, gain_jitter=args.gain_jitter, defect_rate=args.defect_rate,
        max_defects=args.max_defects, defect_kinds=tuple(args.kinds.split(",")), top_fraction=args.top_fraction,
    )
    print(f"head: {model.pretrained_source}", flush=True)
    model.configure_optimizers()
    model.train()  # eval_mode() around each evaluation puts it back
    n = len(data)
    steps_per_epoch = n // args.batch_size
    ctx = StepContext(torch.device("cpu"), total_steps=steps_per_epoch * args.epochs)
    order_gen = torch.Generator().manual_seed(args.seed)

    def test_maps() -> torch.Tensor:
        with eval_mode(model), torch.no_grad():
            return torch.cat([model.defect_map(test[i : i + 64]) for i in range(0, len(test), 64)])

    def scores(maps: torch.Tensor, fraction: float = model.config.top_fraction) -> np.ndarray:
        return top_fraction_mean(maps, fraction).numpy()

    def aurocs(s: np.ndarray) -> dict[str, float]:
        return {"auroc": metrics.auroc(labels == DEFECT, s)} | {
            f"auroc_{h}": metrics.auroc(labels[m] == DEFECT, s[m]) for h, m in halves.items()
        }

    rows, started = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(n, generator=order_gen)
        for b in range(steps_per_epoch):
            _, painted, mask = model.painted_views(data[order[b * args.batch_size : (b + 1) * args.batch_size]])
            model.head_step(painted, mask, ctx)
            ctx.step += 1
        if epoch % max(1, args.epochs // 4) == 0 or epoch == args.epochs:
            maps = test_maps()
            row = {"epoch": epoch, "seconds": time.perf_counter() - started} | aurocs(scores(maps))
            rows.append(row)
            print(f"epoch {epoch}: AUROC {row['auroc']:.3f} (a {row['auroc_a']:.3f} / b {row['auroc_b']:.3f})", flush=True)

    columns = [("epoch", "epoch"), ("auroc_a", "AUROC a"), ("auroc_b", "AUROC b"), ("auroc", "AUROC all"), ("seconds", "s")]
    print("\n" + format_table(rows, columns))
    fractions = [{"top_fraction": f} | aurocs(scores(maps, f)) for f in FRACTIONS]  # does the image score suit the recipe?
    print("\nimage score = mean of the top fraction of the final map\n" + format_table(fractions, [("top_fraction", "top fraction")] + columns[1:4]))
    path = write_results(args.out or default_out("seg-head"), {"command": command, "args": vars(args), "rows": rows, "fractions": fractions})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
