"""Fuzz the model-file reader (``read_info`` and ``ModelBundle.load``).

Every case is one file: random bytes, a real model file truncated or with bits flipped, its
metadata JSON mutated (keys deleted, wrong types, huge numbers, NaN, nested junk, another
method) or its safetensors header mutated (huge shapes, wrong dtypes, offsets past the end).
Each case must end in a loaded model or a ``ModelFileError`` that names the file: never another
exception, a hang (per-case time bound) or memory beyond a fixed bound (peak RSS growth). A
loaded model must also score one batch. Exit status 1 on any failure.

    INSPECTOR_THREADS=1 python bench/fuzz_models.py --cases 3000

The case generator (``seed_files``, ``cases``) is shared with tests/test_hostile_model_files.py.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import random
import re
import resource
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KINDS = ("random", "truncated", "bitflip", "metadata", "header")

# values a careless or hostile writer puts where a number, a text or an object belongs
JUNK: tuple = (
    None, True, False, 0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 1e308, -1e308, float("nan"), float("inf"),
    float("-inf"), 0.5, -0.0, "", "abc", "NaN", "1e999", "../../etc", "x" * 5000, [], [1, 2], {}, {"a": {"b": []}},
    [[[[[[[[[[]]]]]]]]]], {"value": None},
)
# sizes that would ask for a huge network if nothing bounded them
HUGE_SIZES = {"nz": 10**6, "width": 10**5, "extra_layers": 1000, "image_size": 2**16, "patch_size": 2**14,
              "head_width": 10**5, "feature_grid": 10**4, "max_mult": 10**4, "critic_hidden": 10**7, "dim": 2**20,
              "depth": 10**4, "score_batch": 10**9, "channels": 10**4, "grid_cells": 10**6}
DTYPES = ("F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "C64", "XYZ", "", 5, None)


def seed_files(folder: Path) -> list[bytes]:
    """Small real model files (untrained, 32 px) of a few methods, as bytes: the fuzz's raw material."""
    import torch

    from inspector.engine.bundle import ModelBundle, ModelInfo
    from inspector.engine.threshold import Threshold
    from inspector.models import create_model

    torch.manual_seed(0)
    made = []
    for i, (method, options) in enumerate((
        ("autoencoder", {"nz": 8, "width": 4}),
        ("ganomaly", {"nz": 8, "width": 4}),
        ("seg-skip-ganomaly", {"width": 4, "head_width": 4, "pretrained": False}),
    )):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = create_model(method, image_size=32, **options).eval()
        info = ModelInfo(method, model.config.to_dict(), Threshold(0.5, "manual"), name=f"seed{i}", version=1,
                         metrics={"auroc": 0.9}, map_scale={"low": 0.0, "high": 2.0})
        made.append(ModelBundle(model, info).save(folder / f"seed{i}.inspector").read_bytes())
    return made


def split(data: bytes) -> tuple[dict, bytes]:
    """(header JSON object, the weights' bytes) of a safetensors file."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header: dict | str | bytes, body: bytes) -> bytes:
    """A safetensors file from a header (object, text or raw bytes) and the weights' bytes."""
    if isinstance(header, dict):
        header = json.dumps(header)
    raw = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + body


def _junk(rng: random.Random):
    if rng.random() < 0.1:
        depth = rng.choice((10, 900, 100_000))  # 900: as deep as json and repr still go; then text
        return json.loads("[" * depth + "]" * depth) if depth < 1000 else "[" * depth
    return copy.deepcopy(rng.choice(JUNK))


def _paths(d, prefix=()) -> list[tuple]:
    """Every key path inside nested dicts."""
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    return out


def _mutate_meta(meta: dict, rng: random.Random) -> dict | str:
    """One to three changes to the inspector metadata object (or it replaced by junk text)."""
    from inspector.models import method_names

    roll = rng.random()
    if roll < 0.05:
        return rng.choice(["", "{", "[]", "null", "1e999", "[" * 100_000, "{\"method\": ", "\x00\xff", '"text"'])
    meta = copy.deepcopy(meta)
    for _ in range(rng.randint(1, 3)):
        paths = _paths(meta)
        op = rng.random()
        if op < 0.2 and paths:  # delete a key
            *parent, key = rng.choice(paths)
            node = meta
            for k in parent:
                node = node[k]
            del node[key]
        elif op < 0.55 and paths:  # a wrong value
            *parent, key = rng.choice(paths)
            node = meta
            for k in parent:
                node = node[k]
            node[key] = _junk(rng)
        elif op < 0.75 and isinstance(meta.get("config"), dict):  # a size that would build a huge network
            own = sorted(set(HUGE_SIZES) & set(meta["config"]))  # mostly options the method has
            key = rng.choice(own if own and rng.random() < 0.9 else sorted(HUGE_SIZES))
            meta["config"][key] = rng.choice((HUGE_SIZES[key], HUGE_SIZES[key] // 7 + 1, -HUGE_SIZES[key], 0, 1))
        elif op < 0.85:  # another method for the same weights, or a made-up one
            meta["method"] = rng.choice(method_names() + ["nope", "GANOMALY", ""])
        elif op < 0.92:  # unknown keys
            target = meta["config"] if isinstance(meta.get("config"), dict) and rng.random() < 0.5 else meta
            target[rng.choice(["extra", "__class__", "nz ", "x" * 200])] = _junk(rng)
        else:  # a number nudged within or just beyond plausible
            numeric = [p for p in paths if _is_number(_get(meta, p))]
            if numeric:
                p = rng.choice(numeric)
                _set(meta, p, _get(meta, p) * rng.choice((-1, 0, 2, 1000, 1e-9)) + rng.choice((0, 1, -1)))
    return meta


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _get(d, path):
    for k in path:
        d = d[k]
    return d


def _set(d, path, value):
    for k in path[:-1]:
        d = d[k]
    d[path[-1]] = value


def _mutate_header(header: dict, body: bytes, rng: random.Random) -> bytes:
    """One change to the tensor table (or the header's framing)."""
    header = copy.deepcopy(header)
    names = [k for k in header if k != "__metadata__"]
    name = rng.choice(names)
    entry = header[name]
    op = rng.randrange(12)
    if op == 0:
        entry["shape"] = [rng.choice((2**31, 2**40, 2**62, 10**6))] + entry["shape"][1:]
    elif op == 1:
        entry["shape"] = entry["shape"] + [rng.choice((1, 2, 1000))]
    elif op == 2:
        entry["dtype"] = rng.choice(DTYPES)
    elif op == 3:
        b, e = entry["data_offsets"]
        entry["data_offsets"] = [b, e + rng.choice((1, 4, 2**40, len(body) * 10))]
    elif op == 4:
        entry["data_offsets"] = [rng.choice((-1, 2**64, len(body) + 8)), rng.choice((0, 2**64, len(body) + 16))]
    elif op == 5:
        del header[name]
    elif op == 6:
        header[name + ".extra"] = dict(entry)
    elif op == 7:
        header[name] = _junk(rng)
    elif op == 8:
        entry[rng.choice(("shape", "data_offsets", "dtype"))] = _junk(rng)
    elif op == 9:  # the shape of another tensor of the same size (a transposed or reshaped weight)
        n = math.prod(entry["shape"])
        entry["shape"] = [n] if len(entry["shape"]) != 1 else [1, n]
    elif op == 10:
        header["__metadata__"] = rng.choice(({"inspector": 5}, {"other": "x"}, [], "x", {"inspector": None}))
    else:  # the length prefix lies
        data = join(header, body)
        n = int.from_bytes(data[:8], "little") + rng.choice((-9, -1, 1, 7, 2**20, 2**40, 2**63))
        return max(0, n).to_bytes(8, "little", signed=False) + data[8:] if n < 2**64 else data
    return join(header, body)


def cases(seeds: list[bytes], rng: random.Random, count: int) -> Iterator[tuple[str, bytes]]:
    """``count`` (kind, file bytes) cases, from ``rng`` alone (same seed, same cases)."""
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        seed = rng.choice(seeds)
        if kind == "random":
            n = rng.choice((0, 1, 7, 8, 9, 64, 1000, 20_000))
            data = rng.randbytes(n)
            if rng.random() < 0.5 and n >= 8:  # a plausible length prefix in front of the noise
                data = rng.randrange(2, n).to_bytes(8, "little") + data[8:]
        elif kind == "truncated":
            n = int.from_bytes(seed[:8], "little")
            cut = rng.choice((rng.randrange(len(seed)), rng.randrange(min(len(seed), 8 + n + 16)), len(seed) - rng.randint(1, 8)))
            data = seed[:cut]
        elif kind == "bitflip":
            data = bytearray(seed)
            n = int.from_bytes(seed[:8], "little")
            for _ in range(rng.randint(1, 8)):  # mostly in the header: a flip in the weights only changes a weight
                pos = rng.randrange(8 + n) if rng.random() < 0.8 else rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
            data = bytes(data)
        elif kind == "metadata":
            header, body = split(seed)
            meta = _mutate_meta(json.loads(header["__metadata__"]["inspector"]), rng)
            header["__metadata__"]["inspector"] = meta if isinstance(meta, str) else json.dumps(meta)
            data = join(header, body)
        else:
            header, body = split(seed)
            data = _mutate_header(header, body, rng)
        yield kind, data


class Hang(Exception):
    """A case ran past its time bound."""


def _alarm(signum, frame):
    raise Hang()


def score_once(bundle) -> None:
    """A loaded model must also score: one batch at its input size."""
    import torch

    c = bundle.model.config
    with torch.no_grad():
        out = bundle.model.score(torch.zeros(1, c.channels, c.image_size, c.image_size))
    assert out.image_score.shape == (1,)


def run_case(path: Path, data: bytes, time_limit: float = 20.0, score: bool = True) -> tuple[str, str]:
    """(outcome, detail): outcome is "loaded", "refused" (a ModelFileError naming the file) or a
    failure: "crash" (another exception), "unnamed" (an error without the file), "hang",
    "inconsistent" (read_info refused what load loaded) or "score" (loaded, cannot score)."""
    from inspector.engine.bundle import ModelBundle, ModelFileError, read_info

    path.write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                read_info(path)
                info_ok = True
            except ModelFileError as e:
                if str(path) not in str(e):
                    return "unnamed", str(e)[:200]
                info_ok = False
            try:
                bundle = ModelBundle.load(path)
            except ModelFileError as e:
                if str(path) not in str(e):
                    return "unnamed", str(e)[:200]
                return "refused", str(e).removeprefix(f"{path}: ")[:200]
            if not info_ok:
                return "inconsistent", "read_info refused a file that loads"
            if score:
                try:
                    score_once(bundle)
                except Hang:
                    raise
                except Exception as e:  # noqa: BLE001
                    return "score", f"{type(e).__name__}: {str(e)[:200]}"
            return "loaded", ""
    except Hang:
        return "hang", f"over {time_limit:g} s"
    except Exception as e:  # noqa: BLE001 — the point: anything but ModelFileError is a finding
        return "crash", f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


FAILURES = ("crash", "unnamed", "hang", "inconsistent", "score")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=3000, help="number of cases (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the case generator (default 0)")
    parser.add_argument("--time-limit", type=float, default=20.0, help="seconds one case may take (default 20)")
    parser.add_argument("--max-rss-growth-mb", type=float, default=1536, help="peak RSS growth allowed (default 1536)")
    args = parser.parse_args(argv)
    if args.cases < 1:
        parser.error("--cases must be at least 1")

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="fuzz-models-") as tmp:
        folder = Path(tmp)
        seeds = seed_files(folder)
        for i, seed in enumerate(seeds):  # warm up: the unmodified files load (and imports are done)
            outcome, detail = run_case(folder / f"warm{i}.inspector", seed)
            assert outcome == "loaded", (outcome, detail)
        baseline = peak_rss_mb()
        rng = random.Random(args.seed)
        counts: dict[str, Counter] = defaultdict(Counter)
        slowest: dict[str, float] = defaultdict(float)
        findings: list[tuple[str, str, str]] = []
        reasons: Counter = Counter()
        started = time.perf_counter()
        for kind, data in cases(seeds, rng, args.cases):
            t = time.perf_counter()
            outcome, detail = run_case(folder / "case.inspector", data, args.time_limit)
            slowest[kind] = max(slowest[kind], time.perf_counter() - t)
            counts[kind][outcome] += 1
            if outcome == "refused":
                reasons[re.sub(r"\d+", "N", ":".join(detail.split(":")[:2]))[:90]] += 1
            if outcome in FAILURES:
                findings.append((kind, outcome, detail))
        elapsed = time.perf_counter() - started
        growth = peak_rss_mb() - baseline

    print(f"{args.cases} cases, seed {args.seed}, {elapsed:.0f} s, peak RSS growth {growth:.0f} MB (bound {args.max_rss_growth_mb:.0f})")
    print(f"{'kind':<10} {'cases':>6} {'loaded':>7} {'refused':>8} {'failed':>7} {'slowest s':>10}")
    for kind in KINDS:
        c = counts[kind]
        failed = sum(c[f] for f in FAILURES)
        print(f"{kind:<10} {sum(c.values()):>6} {c['loaded']:>7} {c['refused']:>8} {failed:>7} {slowest[kind]:>10.2f}")
    print("most frequent refusals:")
    for reason, n in reasons.most_common(20):
        print(f"  {n:>5}  {reason}")
    for kind, outcome, detail in findings[:20]:
        print(f"FAIL {kind} {outcome}: {detail}")
    bad = bool(findings) or growth > args.max_rss_growth_mb
    print("FAILED" if bad else "OK: every case ended in a loaded model or a ModelFileError naming the file")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
