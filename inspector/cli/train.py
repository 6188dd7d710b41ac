"""``inspector train``: train a model on the good images of a dataset folder and register it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from inspector.cli.common import (
    MAX_BATCH, MAX_EPOCHS, MAX_SEED, CliError, ProgressBar, duration, fmt, number_in, open_registry, print_json, require_workstation,
)
from inspector.engine.threshold import TRAINING_MODES, ThresholdMode


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a model on the good images of a dataset folder")
    t.add_argument("data", metavar="DATA_DIR", help="MVTec layout, folder + labels.csv, or a flat folder of good images")
    t.add_argument("--method", default=None, help="see `inspector methods` (default: patchcore, the registry's DEFAULT_METHOD)")
    t.add_argument("--image-size", type=number_in(int, 32, 256, power_of_two=True), help="input size in pixels, a power of two 32..256 (method default)")
    t.add_argument("--channels", type=int, choices=(1, 3), help="1 = gray, 3 = RGB (method default)")
    t.add_argument("--epochs", type=number_in(int, 1, MAX_EPOCHS), help=f"training epochs, 1..{MAX_EPOCHS} (method default)")
    t.add_argument("--batch-size", type=number_in(int, 1, MAX_BATCH), help=f"training batch size, 1..{MAX_BATCH} (method default)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--name", help="registry name (default: DATASET-METHOD); an existing name gets a new version")
    t.add_argument("--seed", type=number_in(int, 0, MAX_SEED), default=0)
    t.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="method hyper-parameter (repeatable)")
    t.add_argument("--augment", action="store_true", help="random flips during training")
    t.add_argument("--align", action="store_true",
                   help="turn and move every part onto a reference good part before scoring (for parts that are not placed identically)")
    t.add_argument("--tile", type=number_in(int, 32, 4096), metavar="PIXELS",
                   help="score large images tile by tile, each PIXELS a side of the image, at the model's image size (default: the whole image)")
    t.add_argument("--tile-overlap", type=number_in(float, 0.0, 0.75), default=0.25, metavar="SHARE",
                   help="share of a tile's side its neighbour also covers, 0..0.75 (default 0.25)")
    t.add_argument("--threshold-mode", default=ThresholdMode.GOOD_QUANTILE.value, choices=[m.value for m in TRAINING_MODES])
    t.add_argument("--false-alarm-rate", type=number_in(float, 0.0, 0.5, low_open=True), default=0.02,
                   help="target false alarms on held-out good images, more than 0 and at most 0.5")
    t.add_argument("--init-from", metavar="MODEL", help="fine-tune from this model (becomes the parent version)")
    t.add_argument("--restart", action="store_true", help="ignore a checkpoint of an interrupted run")
    t.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    t.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                   help="bfloat16 autocast where the CPU has the instructions for it (AVX512-BF16, AMX): GAN steps 1.3-1.5x as fast "
                        "at the same AUROC; float32 elsewhere and for BiGAN (default: on)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, booleans), else strings."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise CliError(f"--param expects key=value, got '{item}'")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def train_config(args: argparse.Namespace):
    """The training settings from the options, each unset one taken from the method's defaults."""
    from inspector.engine.trainer import TrainConfig
    from inspector.models import DEFAULT_METHOD, get_method

    if args.method is None:
        args.method = DEFAULT_METHOD
    cls = get_method(args.method)  # clear error for an unknown method before any work
    defaults = cls.Config()
    return TrainConfig(  # validated on construction: bad settings are refused before any work
        method=args.method,
        image_size=defaults.image_size if args.image_size is None else args.image_size,
        channels=defaults.channels if args.channels is None else args.channels,
        epochs=cls.train_defaults["epochs"] if args.epochs is None else args.epochs,
        batch_size=cls.train_defaults["batch_size"] if args.batch_size is None else args.batch_size,
        seed=args.seed,
        device=args.device,
        amp=not args.no_amp,
        bf16=args.bf16,
        augment=args.augment,
        align=args.align,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        threshold_mode=args.threshold_mode,
        false_alarm_rate=args.false_alarm_rate,
        params=parse_params(args.param),
    )


def cmd_train(args: argparse.Namespace) -> int:
    require_workstation("training")
    from inspector.data.datasets import open_dataset
    from inspector.engine.events import TrainProgress
    from inspector.engine.modelref import check_name
    from inspector.engine.trainer import ImagesSkipped, TrainNotice
    from inspector.engine.workflow import train_dataset

    config = train_config(args)
    if args.name:
        check_name(args.name)  # before any work: the name becomes a folder and a checkpoint file
    dataset = open_dataset(Path(args.data), seed=args.seed)
    registry = open_registry()
    init_from = registry.load(args.init_from) if args.init_from else None
    bar = ProgressBar(f"training {config.method}", not args.json)

    def on_event(event) -> None:
        if isinstance(event, TrainProgress) and event.phase == "train":
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(event.losses.items())[:3])
            extra = f"ep {event.epoch}/{event.epochs} {losses} {event.images_per_s:.0f} img/s ETA {duration(event.eta_s)}"
            bar.update(event.step, event.steps, extra, force=event.step == event.steps)
        elif isinstance(event, TrainProgress) and event.phase == "calibrate" and not args.json:
            bar.close()
            print("calibrating the threshold on held-out good images ...", file=sys.stderr)
        elif isinstance(event, ImagesSkipped):
            for path, reason in event.report.failed:
                print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)
        elif isinstance(event, TrainNotice):  # resumed from a checkpoint, or a checkpoint ignored
            print(event.message if event.kind == "resumed" else f"warning: {event.message}", file=sys.stderr)

    entry = train_dataset(dataset, config, registry, args.name, on_event, init_from=init_from, resume=not args.restart)
    info = entry.info
    if args.json:
        print_json({"model": info.ref, "path": str(entry.path), **info.to_dict()})
        return 0
    cal = info.metrics.get("calibration", {})
    print(f"saved {info.ref} -> {entry.path}")
    print(f"threshold {info.threshold.value:.6g} ({info.threshold.method})")
    for key, value in cal.items():
        print(f"  {key}: {fmt(value)}")
    return 0
