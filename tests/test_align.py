"""Alignment: a moved and turned part is put back onto the reference good part before scoring,
the map is moved back onto the part, and the reference travels with the model (format 2)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspector.engine.align import Alignment, build_reference, estimate, warp
from inspector.engine.bundle import ModelBundle, ModelFileError
from inspector.engine.predictor import Predictor
from inspector.engine.trainer import TrainConfig, Trainer
from tests.conftest import make_part


def part(seed: int = 0, size: int = 64) -> np.ndarray:
    """A part with features that fix its pose: a ring and an off-centre bar (texture, lighting
    and noise vary with ``seed``)."""
    image = make_part(np.random.default_rng(seed), size)
    cv2.rectangle(image, (8, 10), (20, 16), 250, -1)
    return image


def moved(image: np.ndarray, dx: float, dy: float, angle: float) -> np.ndarray:
    h, w = image.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)


def test_ecc_puts_a_moved_part_back_onto_the_reference():
    reference = part()
    shifted = moved(reference, 4, -3, 2.0)
    matrix, confidence = estimate(shifted, reference)
    back = warp(shifted, matrix)
    inner = (slice(8, -8), slice(8, -8))
    assert confidence > 0.9
    assert np.abs(back[inner].astype(int) - reference[inner]).mean() < np.abs(shifted[inner].astype(int) - reference[inner]).mean() / 3
    assert abs(matrix[0, 2]) + abs(matrix[1, 2]) > 3  # it did move


def test_the_reference_round_trips_and_bad_metadata_is_one_line():
    alignment = Alignment(build_reference([part(), moved(part(), 1, 1, 0.5), moved(part(), -1, 2, -0.5)]))
    again = Alignment.from_dict(alignment.to_dict())
    assert np.array_equal(again.reference, alignment.reference)
    with pytest.raises(ValueError, match="alignment"):
        Alignment.from_dict({"motion": "euclidean", "reference_png": "not base64!"})


@pytest.fixture(scope="module")
def aligned_and_not(tmp_path_factory):
    folder = tmp_path_factory.mktemp("placed")
    rng = np.random.default_rng(2)
    for i in range(40):
        cv2.imwrite(str(folder / f"{i:02d}.png"), moved(part(i), *rng.uniform(-1, 1, 2), 0.0))
    files = sorted(folder.glob("*.png"))
    options = dict(method="padim", image_size=64, device="cpu", seed=0)
    return Trainer(TrainConfig(**options, align=True)).fit(files), Trainer(TrainConfig(**options)).fit(files)


def test_an_aligned_model_keeps_moved_good_parts_below_its_threshold_and_still_finds_a_defect(aligned_and_not, tmp_path):
    pytest.importorskip("inspector.models.padim")
    aligned, plain = aligned_and_not
    goods = [moved(part(100 + i), dx, dy, a) for i, (dx, dy, a) in enumerate(((5, 4, 2.5), (-5, 3, -2.5), (4, -5, 1.5), (-4, -4, -3)))]
    with_alignment = Predictor(aligned, "cpu").predict_batch(goods)
    without = Predictor(plain, "cpu").predict_batch(goods)
    assert all(p.alignment_confidence > 0.8 for p in with_alignment)
    unmoved = [part(100 + i) for i in range(4)]

    def mean_score(bundle, images) -> float:
        return float(np.mean([p.score for p in Predictor(bundle, "cpu").predict_batch(images)]))

    # aligned, a moved good part scores as an unmoved one; as placed, it looks like a defect
    assert mean_score(aligned, goods) < 1.3 * mean_score(aligned, unmoved)
    assert mean_score(plain, goods) > 2 * mean_score(plain, unmoved)
    assert sum(p.decision == "NG" for p in with_alignment) < sum(p.decision == "NG" for p in without) == 4

    defect = moved(part(200), 4, 3, 2.0)
    cv2.circle(defect, (44, 46), 5, 0, -1)
    p = Predictor(aligned, "cpu").predict(defect)
    assert p.decision == "NG"
    y, x = np.unravel_index(np.argmax(p.anomaly_map), p.anomaly_map.shape)
    assert abs(x - 44) <= 8 and abs(y - 46) <= 8, "the map is moved back onto the part as it lay"

    path = aligned.save(tmp_path / "aligned.inspector")
    loaded = ModelBundle.load(path)
    assert loaded.info.format_version == 3 and np.array_equal(loaded.info.alignment.reference, aligned.info.alignment.reference)
    assert Predictor(loaded, "cpu").predict(defect).score == pytest.approx(p.score, rel=1e-5)
    assert plain.save(tmp_path / "plain.inspector") and ModelBundle.load(tmp_path / "plain.inspector").info.format_version == 1


def test_a_part_that_cannot_be_aligned_is_ng_whatever_its_score(aligned_and_not):
    aligned = aligned_and_not[0]
    assert 0 < aligned.info.alignment.min_confidence < 1
    predictor = Predictor(aligned, "cpu")
    blank = np.full((64, 64), 128, np.uint8)
    other = np.random.default_rng(5).integers(0, 256, (64, 64)).astype(np.uint8)  # not this product
    far = moved(part(300), 20, -20, 25.0)  # beyond the motion alignment accepts
    for image in (blank, other, far):
        p = predictor.predict(image)
        assert p.unaligned and p.decision == "NG" and p.reason == "part could not be aligned to the reference"
        assert p.score == float("inf")
    good = predictor.predict(moved(part(301), 3, -2, 1.0))
    assert not good.unaligned and np.isfinite(good.score)


def test_a_file_with_alignment_that_claims_format_1_is_refused(aligned_and_not, tmp_path):
    import json

    from safetensors import safe_open
    from safetensors.numpy import save_file

    path = aligned_and_not[0].save(tmp_path / "aligned.inspector")
    with safe_open(str(path), "np") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    meta["format"] = "1"
    info = json.loads(meta["inspector"])
    info["format_version"] = 1
    meta["inspector"] = json.dumps(info)
    save_file(tensors, str(tmp_path / "claims-1.inspector"), metadata=meta)
    with pytest.raises(ModelFileError, match="holds an alignment floor, which needs model file format 3"):
        ModelBundle.load(tmp_path / "claims-1.inspector")


def test_cli_train_align_stores_the_reference(tmp_home, parts_dir, capsys):
    from inspector.cli import main
    from inspector.engine.registry import ModelRegistry

    assert main(["train", str(parts_dir), "--method", "padim", "--image-size", "64", "--align", "--name", "aligned", "--device", "cpu"]) == 0
    info = ModelRegistry().load("aligned").info
    assert info.alignment is not None and info.alignment.reference.shape == (64, 64) and info.format_version == 3
    assert info.training["config"]["align"] is True
