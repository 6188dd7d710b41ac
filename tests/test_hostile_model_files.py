"""Hostile model files: every problem is one ModelFileError naming the file, found before memory
is spent on it; nothing non-finite is saved; the hyper-parameters' types and sizes are bounded.

The fuzz cases come from bench/fuzz_models.py (one generator for the benchmark and these tests).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inspector.engine.bundle import ModelBundle, ModelFileError, ModelInfo, read_info
from inspector.engine.predictor import Predictor
from inspector.engine.threshold import Threshold
from inspector.models import create_meta_model, create_model, get_method, method_names
from inspector.models.base import option_range

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_models", ROOT / "bench" / "fuzz_models.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

pytestmark = pytest.mark.usefixtures("tmp_home")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> list[bytes]:
    return fuzz.seed_files(tmp_path_factory.mktemp("seeds"))


def with_meta(seed: bytes, change) -> bytes:
    """``seed`` with its inspector metadata replaced by ``change(meta)`` (an object or raw text)."""
    header, body = fuzz.split(seed)
    meta = change(json.loads(header["__metadata__"]["inspector"]))
    header["__metadata__"]["inspector"] = meta if isinstance(meta, str) else json.dumps(meta)
    return fuzz.join(header, body)


def with_header(seed: bytes, change) -> bytes:
    header, body = fuzz.split(seed)
    change(header)
    return fuzz.join(header, body)


def _set(meta: dict, dotted: str, value) -> dict:
    *parents, key = dotted.split(".")
    node = meta
    for k in parents:
        node = node[k]
    node[key] = value
    return meta


def _del(meta: dict, dotted: str) -> dict:
    *parents, key = dotted.split(".")
    node = meta
    for k in parents:
        node = node[k]
    del node[key]
    return meta


MALFORMED = {
    "not JSON": (lambda m: '{"method": ', "not valid JSON"),
    "nested junk": (lambda m: "[" * 100_000, "not valid JSON"),
    "a list": (lambda m: [m], "must be a JSON object"),
    "no threshold": (lambda m: _del(m, "threshold"), "no 'threshold'"),
    "no method": (lambda m: _del(m, "method"), "no 'method'"),
    "no threshold value": (lambda m: _del(m, "threshold.value"), "threshold"),
    "threshold text": (lambda m: _set(m, "threshold.value", "abc"), "threshold must be a finite number, got 'abc'"),
    "threshold NaN": (lambda m: _set(m, "threshold.value", float("nan")), "threshold must be a finite number, got nan"),
    "threshold inf": (lambda m: _set(m, "threshold.value", float("inf")), "threshold must be a finite number"),
    "threshold a list": (lambda m: _set(m, "threshold", [0.5]), "threshold must be a JSON object"),
    "threshold params a list": (lambda m: _set(m, "threshold.params", []), "objects for 'params'"),
    "map scale NaN": (lambda m: _set(m, "map_scale.high", float("nan")), "map_scale high must be a finite number"),
    "map scale reversed": (lambda m: _set(m, "map_scale.low", 5.0), "low must be below high"),
    "map scale missing high": (lambda m: _del(m, "map_scale.high"), "map_scale"),
    "config a list": (lambda m: _set(m, "config", [1, 2]), "config must be a JSON object"),
    "config nz text": (lambda m: _set(m, "config.nz", "abc"), "param 'nz' must be a whole number in 1..1024, got 'abc'"),
    "config nz float": (lambda m: _set(m, "config.nz", 8.5), "param 'nz' must be a whole number"),
    "config nz bool": (lambda m: _set(m, "config.nz", True), "param 'nz' must be a whole number"),
    "config nz huge": (lambda m: _set(m, "config.nz", 10**6), "param 'nz' must be a whole number in 1..1024, got 1000000"),
    "config lr NaN": (lambda m: _set(m, "config.lr", float("nan")), "param 'lr' must be a finite number"),
    "config unknown option": (lambda m: _set(m, "config.evil", 1), "unknown AutoencoderConfig option(s): evil"),
    "config mode a number": (lambda m: _set(m, "config.image_size", 48), "image_size must be a power of two"),
    "method unknown": (lambda m: _set(m, "method", "nope"), "unknown method 'nope'"),
    "method a number": (lambda m: _set(m, "method", 5), "unknown method 5"),
    "version text": (lambda m: _set(m, "version", "3"), "version must be a whole number"),
    "version negative": (lambda m: _set(m, "version", -1), "version must be a whole number"),
    "version bool": (lambda m: _set(m, "version", True), "version must be a whole number"),
    "name a path": (lambda m: _set(m, "name", "../../etc"), "invalid model name"),
    "name a number": (lambda m: _set(m, "name", 7), "invalid model name"),
    "parent a number": (lambda m: _set(m, "parent", 7), "parent must be"),
    "format text": (lambda m: _set(m, "format_version", "1"), "format_version must be a whole number"),
    "format newer": (lambda m: _set(m, "format_version", 99), "newer inspector"),
    "metrics a list": (lambda m: _set(m, "metrics", []), "metrics must be a JSON object"),
    "notes a number": (lambda m: _set(m, "notes", 1), "notes must be text"),
    "metrics nested deep": (lambda m: _set(m, "metrics", json.loads("[" * 900 + "]" * 900)), "metrics must be a JSON object"),
    "metrics nested deep in an object": (lambda m: _set(m, "metrics", {"a": json.loads("[" * 900 + "]" * 900)}), "nested more than 32"),
    "threshold params nested deep": (lambda m: _set(m, "threshold.params", {"a": json.loads("[" * 900 + "]" * 900)}), "nested more than 32"),
    "nz nested deep": (lambda m: _set(m, "config.nz", json.loads("[" * 900 + "]" * 900)), "param 'nz' must be a whole number"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_metadata_is_one_model_file_error_naming_the_file(case, seeds, tmp_path):
    change, expected = MALFORMED[case]
    path = tmp_path / "bad.inspector"
    path.write_bytes(with_meta(seeds[0], change))
    for read in (read_info, ModelBundle.load):
        with pytest.raises(ModelFileError) as error:
            read(path)
        message = str(error.value)
        assert message.startswith(f"{path}: ") and expected in message and "\n" not in message, message


def test_the_unmodified_seed_files_load_and_keep_their_metadata(seeds, tmp_path):
    for i, seed in enumerate(seeds):
        path = tmp_path / f"ok{i}.inspector"
        path.write_bytes(seed)
        assert ModelBundle.load(path).info.to_dict() == read_info(path).to_dict()


def test_every_file_declares_its_format_in_the_header(seeds, tmp_path):
    for seed in seeds:  # without region rules: format 1, which every reader loads (see tests/test_regions.py for 2)
        header, _ = fuzz.split(seed)
        assert header["__metadata__"]["format"] == "1"
        assert json.loads(header["__metadata__"]["inspector"])["format_version"] == 1  # where 0.1.0 looks


def test_a_file_of_a_newer_format_is_refused_in_one_line_naming_the_file_and_both_versions(seeds, tmp_path):
    from inspector import __version__
    from inspector.engine.bundle import FORMAT_VERSION

    newer = FORMAT_VERSION + 1
    cases = {
        "newer.inspector": with_header(seeds[0], lambda h: h["__metadata__"].update(format=str(newer))),
        # refused before the rest is read: a newer format may lay out its metadata differently
        "newer-other-metadata.inspector": with_header(seeds[0], lambda h: h["__metadata__"].update(format=str(newer), inspector="<v2>")),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for read in (read_info, ModelBundle.load):
            with pytest.raises(ModelFileError) as error:
                read(path)
            message = str(error.value)
            assert message.startswith(f"{path}: model file format {newer} is newer") and "\n" not in message, message
            assert f"formats 1..{FORMAT_VERSION}" in message and __version__ in message
    path = tmp_path / "odd.inspector"
    path.write_bytes(with_header(seeds[0], lambda h: h["__metadata__"].update(format="2.0")))
    with pytest.raises(ModelFileError, match="its format must be a whole number >= 1, got '2.0'"):
        read_info(path)


def test_a_file_without_a_format_is_format_1_and_scores_as_before(seeds, tmp_path):
    def strip(header):
        del header["__metadata__"]["format"]
        meta = json.loads(header["__metadata__"]["inspector"])
        del meta["format_version"]
        header["__metadata__"]["inspector"] = json.dumps(meta)

    images = [np.random.default_rng(i).integers(0, 255, (48, 40), dtype=np.uint8) for i in range(3)]
    for i, seed in enumerate(seeds):
        current, legacy = tmp_path / f"current{i}.inspector", tmp_path / f"legacy{i}.inspector"
        current.write_bytes(seed)
        legacy.write_bytes(with_header(seed, strip))
        old, new = ModelBundle.load(legacy), ModelBundle.load(current)
        assert old.info.format_version == 1 and read_info(legacy).to_dict() == read_info(current).to_dict()
        a = [(p.score, p.anomaly_map.tobytes()) for p in Predictor(old, "cpu").predict_batch(images)]
        b = [(p.score, p.anomaly_map.tobytes()) for p in Predictor(new, "cpu").predict_batch(images)]
        assert a == b
        resaved = fuzz.split(old.save(tmp_path / f"resaved{i}.inspector").read_bytes())[0]
        assert resaved["__metadata__"]["format"] == "1"  # a save writes the current format


def _peak_rss_of_a_load(path: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS growth in MB, error) of ModelBundle.load(path) in a fresh interpreter."""
    script = (
        "import resource, sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from inspector.engine.bundle import ModelBundle, ModelFileError\n"
        "from inspector.models import create_model\n"
        "create_model('ganomaly', image_size=32, nz=8, width=4)  # imports and first allocations\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    ModelBundle.load(sys.argv[1]); error = 'loaded'\n"
        "except ModelFileError as e:\n"
        "    error = str(e)\n"
        "grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024\n"
        "assert 'sympy' not in sys.modules, 'the meta build pulled in sympy (seconds on the first load)'\n"
        "print(time.perf_counter() - t, grew, error, sep='\\t')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, grew, error = done.stdout.strip().splitlines()[-1].split("\t", 2)
    return float(seconds), float(grew), error


def test_a_small_file_asking_for_a_huge_network_is_refused_without_allocating_it(seeds, tmp_path):
    """Every size within its bounds, together ~1e9 parameters (~4 GB): the file's weights are
    those of a tiny network, so the header check refuses it before anything is allocated."""
    path = tmp_path / "huge.inspector"
    big = {"image_size": 256, "width": 128, "nz": 1024, "extra_layers": 2}
    path.write_bytes(with_meta(seeds[1], lambda m: _set(m, "config", {**m["config"], **big})))
    assert path.stat().st_size < 2_000_000
    seconds, grew, error = _peak_rss_of_a_load(path)
    assert error.startswith(f"{path}: weights do not match method 'ganomaly'") and "expected" in error, error
    assert seconds < 10 and grew < 300, (seconds, grew)


def test_weights_of_the_wrong_shape_or_dtype_are_refused_naming_the_tensor(seeds, tmp_path):
    header, _ = fuzz.split(seeds[0])
    name = next(k for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 4)

    def reshape(h):
        h[name]["shape"] = [math.prod(h[name]["shape"])]

    def retype(h):
        h[name]["dtype"] = "I32"  # same size as F32: the data still fits the table

    for change, what in ((reshape, "wrong shape or dtype"), (retype, "torch.int32")):
        path = tmp_path / "shape.inspector"
        path.write_bytes(with_header(seeds[0], change))
        read_info(path)  # the metadata is fine
        with pytest.raises(ModelFileError, match="weights do not match") as error:
            ModelBundle.load(path)
        assert name in str(error.value) and what in str(error.value), str(error.value)


def test_a_missing_tensor_and_another_methods_weights_are_refused(seeds, tmp_path):
    header, _ = fuzz.split(seeds[0])
    name = next(k for k in header if k != "__metadata__")
    path = tmp_path / "m.inspector"
    path.write_bytes(with_header(seeds[0], lambda h: h.pop(name)))  # its bytes are then a gap
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        ModelBundle.load(path)
    path.write_bytes(with_meta(seeds[0], lambda m: _set(m, "method", "skip-ganomaly") | {"config": {"image_size": 32}}))
    with pytest.raises(ModelFileError, match="weights do not match method 'skip-ganomaly'.*missing"):
        ModelBundle.load(path)


def test_a_model_with_a_non_finite_threshold_or_map_scale_is_never_saved(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    model = create_model("autoencoder", image_size=32, nz=8, width=4)
    for info in (
        ModelInfo("autoencoder", model.config.to_dict(), Threshold(float("nan"), "good-quantile")),
        ModelInfo("autoencoder", model.config.to_dict(), Threshold(float("inf"), "uncalibrated")),
        ModelInfo("autoencoder", model.config.to_dict(), Threshold(0.5, "manual"), map_scale={"low": 0.0, "high": float("nan")}),
    ):
        path = tmp_path / "nan.inspector"
        with pytest.raises(ModelFileError, match="refused to save: (threshold|map_scale high) must be a finite number"):
            ModelBundle(model, info).save(path)
        assert list(tmp_path.iterdir()) == []  # nothing written, no temp file
    ok = ModelBundle(model, ModelInfo("autoencoder", model.config.to_dict(), Threshold(0.5, "manual"))).save(tmp_path / "ok.inspector")
    assert ModelBundle.load(ok).info.threshold.value == 0.5


def test_a_model_too_big_for_a_model_file_is_refused_before_it_is_written(tmp_path, monkeypatch):
    from inspector.engine import bundle

    model = create_model("autoencoder", image_size=32, nz=8, width=4)
    monkeypatch.setattr(bundle, "MAX_WEIGHT_BYTES", 1000)  # what 1 GB is to a real one
    with pytest.raises(ModelFileError, match="refused to save: the weights take .* more than a model file may hold"):
        ModelBundle(model, ModelInfo("autoencoder", model.config.to_dict(), Threshold(0.5, "manual"))).save(tmp_path / "big.inspector")
    assert not (tmp_path / "big.inspector").exists()


def test_headers_that_lie_about_their_size_are_refused_at_once(seeds, tmp_path):
    path = tmp_path / "h.inspector"
    for length in (2**40, 2**63, len(seeds[0]), 1):
        path.write_bytes(length.to_bytes(8, "little") + seeds[0][8:])
        t = time.perf_counter()
        with pytest.raises(ModelFileError, match="not a model file"):
            read_info(path)
        assert time.perf_counter() - t < 1
    header, body = fuzz.split(seeds[0])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [2**40] + header[name]["shape"][1:]
    path.write_bytes(fuzz.join(header, body))
    with pytest.raises(ModelFileError, match="does not match its shape"):
        read_info(path)


def test_not_a_regular_file_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.inspector"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    folder = tmp_path / "dir.inspector"
    folder.mkdir()
    for path in (fifo, folder):
        with pytest.raises(ModelFileError, match="not a regular file"):
            ModelBundle.load(path)
    with pytest.raises(ModelFileError, match="not found"):
        read_info(tmp_path / "missing.inspector")


def test_a_model_file_cannot_make_the_reader_open_another_file(tmp_path):
    """A TL-GANomaly file whose config names ImageNet weights but says it never used them: loading
    takes the weights from the file and never reads (or hashes) the file it names."""
    model = create_model("tl-ganomaly", image_size=32, nz=8, width=4, pretrained=False)
    elsewhere = tmp_path / "resnet18-00000000.pth"
    elsewhere.write_bytes(b"not weights")
    config = {**model.config.to_dict(), "pretrained": True, "pretrained_path": str(elsewhere), "pretrained_source": ""}
    path = ModelBundle(model, ModelInfo("tl-ganomaly", config, Threshold(0.5, "manual"))).save(tmp_path / "tl.inspector")
    loaded = ModelBundle.load(path)
    batch = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.model.eval().score(batch).image_score, model.eval().score(batch).image_score)


def test_bad_hyper_parameters_are_one_clear_value_error_when_training_too():
    cases = {
        "nz": ("abc", "param 'nz' must be a whole number in 1..1024, got 'abc'"),
        "width": (10**6, "param 'width' must be a whole number in 1..128, got 1000000"),
        "extra_layers": (1.0, "param 'extra_layers' must be a whole number in 0..8, got 1.0"),
        "w_con": (float("nan"), "param 'w_con' must be a finite number in 0..1e+06, got nan"),
        "score_mode": (3, "param 'score_mode' must be text"),
    }
    for key, (value, message) in cases.items():
        with pytest.raises(ValueError) as error:
            create_model("ganomaly", image_size=32, **{key: value})
        assert str(error.value) == message or str(error.value).startswith(message), str(error.value)
    with pytest.raises(ValueError, match="param 'pretrained' must be true or false, got 1"):
        create_model("tl-ganomaly", image_size=32, pretrained=1)
    assert create_model("ganomaly", image_size=32, nz=8, width=4, w_con=5).config.w_con == 5.0  # an int is a number


@pytest.mark.parametrize("method", method_names())
def test_the_shapes_only_network_matches_the_real_one(method):
    """The header check's network (meta device, no memory) has the real one's names, shapes and dtypes."""
    options = {"image_size": 32} | ({"pretrained": False} if "pretrained" in get_method(method).Config.__dataclass_fields__ else {})
    meta = create_meta_model(method, **options).state_dict()
    real = create_model(method, **options).state_dict()
    assert {v.device.type for v in meta.values()} == {"meta"}
    assert [(k, v.shape, v.dtype) for k, v in meta.items()] == [(k, v.shape, v.dtype) for k, v in real.items()]


@pytest.mark.parametrize("method", method_names())
def test_every_number_of_every_method_has_bounds(method):
    config = get_method(method).Config
    for f in dataclasses.fields(config):
        if type(f.default) in (int, float):
            low, high = option_range(config, f.name) or (None, None)
            assert low is not None and math.isfinite(low) and math.isfinite(high), f"{method}: {f.name} is unbounded"
            assert low <= f.default <= high, f"{method}: {f.name}'s default {f.default} is outside {low}..{high}"


def test_a_few_hundred_fuzz_cases_end_in_a_model_or_a_model_file_error(seeds, tmp_path):
    rng = random.Random(16)
    outcomes = {}
    for kind, data in fuzz.cases(seeds, rng, 250):
        outcome, detail = fuzz.run_case(tmp_path / "case.inspector", data, time_limit=20)
        assert outcome not in fuzz.FAILURES, (kind, outcome, detail)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("refused", 0) > 150 and outcomes.get("loaded", 0) > 0, outcomes
