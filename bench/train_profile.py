"""Training-step profile: where a gradient-trained method's step time goes, against the core's peak.

For each method, one training step (``model.training_step``, the Trainer's only call per batch) on
a batch of random images, timed after 3 steps not timed, and:

* **GFLOP per step**: every floating-point operation of the step, forward and backward, counted by
  ``torch.utils.flop_counter`` (multiply-adds count 2);
* **share of the step** in convolutions forward, convolutions backward, the optimisers' updates and
  everything else (elementwise ops, norms, losses, the host sync), from ``torch.profiler``;
* **passes**: how many times each of the model's networks runs forward in one step; where the
  FLOP counter cannot follow a step, they still say how much work it does;
* **GFLOP/s achieved**, and the **peak**: the best rate this core reaches on the step's own
  convolutions run alone forward (oneDNN's fastest case), so "% of peak" says how much a faster
  implementation of the same arithmetic could still gain.

A step at a high share of the peak is bound by its arithmetic: it gets faster only with less
arithmetic (a smaller network, fewer passes) or narrower numbers (bfloat16 where the CPU has it).
With ``--bf16`` the step and the peak both run under bfloat16 autocast, as the Trainer trains by
default where the CPU has the instructions. Where the FLOP counter cannot follow a step (BiGAN's
gradient penalty is a double backward), the row keeps its time and its split, without FLOPs.

    python bench/train_profile.py                          # every gradient-trained method, 64 px, 1 thread
    python bench/train_profile.py --methods ganomaly --threads 2 --image-size 128
    python bench/train_profile.py --methods ganomaly --bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import apply_threads, command_line, default_out, describe_machine, finish, format_table, machine_info, select_methods, write_results

CONV_FORWARD = ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d", "aten::conv_transpose2d",
                "aten::_slow_conv2d_forward", "aten::slow_conv_transpose2d")
CONV_BACKWARD = ("aten::convolution_backward",)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=None, help="comma-separated (default: every gradient-trained method)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default: each method's own training batch size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast, the Trainer's default where the CPU has it")
    parser.add_argument("--steps", type=int, default=8, help="steps timed after 3 not timed (default 8); the median counts")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file (default bench/out/train_profile-<time>.json)")
    return parser.parse_args(argv)


def chosen_methods(text: str | None) -> list[str]:
    """``--methods`` checked by ``common.select_methods``; by default only the gradient-trained ones."""
    from inspector.models.registry import get_method

    methods = select_methods(text)
    return methods if text else [name for name in methods if not get_method(name).fit_only]


def build(method: str, size: int, bf16: bool):
    import torch

    from inspector.models.base import StepContext
    from inspector.models.registry import create_model

    torch.manual_seed(0)
    model = create_model(method, image_size=size, channels=1)
    model.configure_optimizers()
    model.train()
    return model, StepContext(torch.device("cpu"), amp=bf16, amp_dtype=torch.bfloat16, total_steps=1000)


def step_flops(model, ctx, batch) -> tuple[float | None, dict[str, float]]:
    """GFLOP of one training step, in total and by operator (the counter runs it once); None
    where the counter cannot follow the step."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        with counter:
            model.training_step(batch, ctx)
    except RuntimeError as e:  # a gradient penalty's double backward (BiGAN)
        print(f"  FLOPs not counted: {type(e).__name__}: {str(e).splitlines()[0]}", flush=True)
        return None, {}
    by_op = {str(op): n / 1e9 for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return counter.get_total_flops() / 1e9, by_op


def step_passes(model, ctx, batch) -> dict[str, int]:
    """Forward calls of each of the model's networks (its direct submodules) in one step."""
    counts: dict[str, int] = {}

    def counter(name: str):
        def hook(module, args, output) -> None:
            counts[name] = counts.get(name, 0) + 1
        return hook

    hooks = [child.register_forward_hook(counter(name)) for name, child in model.named_children()]
    try:
        model.training_step(batch, ctx)
    finally:
        for hook in hooks:
            hook.remove()
    return counts


def step_seconds(model, ctx, batch, steps: int) -> float:
    for _ in range(3):
        model.training_step(batch, ctx)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.training_step(batch, ctx)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def step_shares(model, ctx, batch) -> dict[str, float]:
    """Fractions of two profiled steps' time in conv forward, conv backward, optimiser, the rest."""
    from torch.profiler import profile, ProfilerActivity

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(2):
            model.training_step(batch, ctx)
    events = prof.key_averages()
    self_total = sum(e.self_cpu_time_total for e in events)
    conv_f = sum(e.self_cpu_time_total for e in events if e.key in CONV_FORWARD)
    conv_b = sum(e.cpu_time_total for e in events if e.key in CONV_BACKWARD)
    optim = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    shares = {"conv_fwd": conv_f, "conv_bwd": conv_b, "optimiser": optim}
    shares = {k: v / max(self_total, 1) for k, v in shares.items()}
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return shares


def conv_peak(model, ctx, batch) -> float:
    """The best GFLOP/s of any of the step's 2-D convolutions run alone forward, on its own input."""
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    inputs: dict[nn.Module, torch.Tensor] = {}

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        inputs.setdefault(module, args[0].detach())

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    model.training_step(batch, ctx)
    for hook in hooks:
        hook.remove()
    best = 0.0
    with torch.no_grad(), ctx.autocast():
        for conv, x in inputs.items():
            counter = FlopCounterMode(display=False)
            with counter:
                conv(x)
            flops = counter.get_total_flops()
            if flops < 1e8:
                continue
            for _ in range(2):
                conv(x)
            started, calls = time.perf_counter(), 0
            while time.perf_counter() - started < 0.3 and calls < 200:
                conv(x)
                calls += 1
            best = max(best, flops * calls / (time.perf_counter() - started) / 1e9)
    return best


def profile_method(method: str, size: int, batch_size: int | None, steps: int, bf16: bool) -> dict:
    import torch

    from inspector.models.registry import get_method

    batch_size = batch_size or get_method(method).train_defaults["batch_size"]
    model, ctx = build(method, size, bf16)
    batch = torch.rand(batch_size, 1, size, size) * 2 - 1
    gflop, by_op = step_flops(model, ctx, batch)
    passes = step_passes(model, ctx, batch)
    seconds = step_seconds(model, ctx, batch, steps)
    shares = step_shares(model, ctx, batch)
    peak = conv_peak(model, ctx, batch)
    rate = gflop / seconds if gflop is not None else None
    conv_gflop = sum(v for op, v in by_op.items() if "convolution" in op)
    row = {"method": method, "precision": "bf16" if bf16 else "float32", "batch": batch_size, "step_ms": seconds * 1000,
           "img_s": batch_size / seconds, "gflop_step": gflop, "conv_flop_share": conv_gflop / gflop if gflop else None,
           "gflops": rate, "peak_gflops": peak, "of_peak": rate / peak if rate and peak else None, **shares, "passes": passes}
    arithmetic = f"{gflop:.1f} GFLOP/step at {rate:.0f} GFLOP/s" if gflop is not None else "FLOPs not counted"
    print(f"[{method}] {row['step_ms']:.0f} ms/step ({row['img_s']:.1f} img/s), {arithmetic} "
          f"(peak {peak:.0f}); conv fwd {shares['conv_fwd']:.0%}, bwd {shares['conv_bwd']:.0%}, optimiser {shares['optimiser']:.0%}, "
          f"other {shares['other']:.0%}; forward passes " + ", ".join(f"{k} {v}" for k, v in passes.items()), flush=True)
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = apply_threads(args.threads)
    command = command_line()
    machine = machine_info("cpu")
    from inspector.engine.device import cpu_bf16

    precision = ("bf16 autocast" + ("" if cpu_bf16() else " (emulated: this CPU has no bf16 instructions)")) if args.bf16 else "float32"
    print(f"command: {command}\n{describe_machine(machine)}; {threads} thread(s), {args.image_size} px, {precision}\n", flush=True)
    rows, errors = [], {}
    for method in chosen_methods(args.methods):
        try:
            rows.append(profile_method(method, args.image_size, args.batch_size, args.steps, args.bf16))
        except RuntimeError as e:
            errors[method] = f"{type(e).__name__}: {e}"
            print(f"[{method}] FAILED: {errors[method]}", flush=True)
    columns = [("method", "method"), ("precision", "precision"), ("batch", "batch"), ("step_ms", "ms/step"), ("img_s", "img/s"), ("gflop_step", "GFLOP/step"),
               ("gflops", "GFLOP/s"), ("peak_gflops", "conv peak"), ("of_peak", "of peak"), ("conv_fwd", "conv fwd"),
               ("conv_bwd", "conv bwd"), ("optimiser", "optimiser"), ("other", "other")]
    print("\n" + format_table(rows, columns))
    out = args.out or default_out("train_profile")
    write_results(out, {"command": command, "machine": machine, "threads": threads, "image_size": args.image_size, "bf16": args.bf16, "rows": rows,
                        "errors": errors})
    return finish(errors, out, command)


if __name__ == "__main__":
    sys.exit(main())
