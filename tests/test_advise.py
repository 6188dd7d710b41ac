"""inspector advise: quick candidates trained on good images, compared on held-out good images,
synthetic defects and labelled defects, and one recommended with its reason."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.data.datasets import open_dataset
from inspector.data.synthetic import paint_defect
from inspector.engine.advise import AdviseError, Candidate, advise, candidates_available
from tests.conftest import make_part

QUICK = [
    Candidate("ganomaly", image_size=32, epochs=3, params={"width": 8, "nz": 16}),
    Candidate("autoencoder", image_size=32, epochs=3, params={"width": 8}),
]


@pytest.fixture(scope="module")
def mvtec_parts(tmp_path_factory):
    """24 good parts to train on, and a test split with good parts and parts with a painted blob."""
    root = tmp_path_factory.mktemp("advise")
    rng = np.random.default_rng(1)
    for i in range(24):
        (root / "train" / "good").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "train" / "good" / f"{i:02d}.png"), make_part(rng))
    for i in range(6):
        (root / "test" / "good").mkdir(parents=True, exist_ok=True)
        (root / "test" / "blob").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "test" / "good" / f"{i}.png"), make_part(rng))
        cv2.imwrite(str(root / "test" / "blob" / f"{i}.png"), paint_defect(make_part(rng), rng, "blob", scale=1.5)[0])
    return root


def test_advise_ranks_by_labelled_defects_and_recommends_one(mvtec_parts):
    result = advise(open_dataset(mvtec_parts), QUICK, device="cpu")
    assert [r.method for r in result.results] == ["ganomaly", "autoencoder"]
    assert result.n_labelled == 6 and result.n_holdout_good == 6 and result.n_train == 18
    assert result.n_synthetic >= 32
    for r in result.results:
        assert not r.error
        assert 0.0 <= r.labelled_auroc <= 1.0 and 0.0 <= r.synthetic_auroc <= 1.0 and 0.0 <= r.pixel_auroc <= 1.0
        assert r.train_s > 0 and r.ms_per_image > 0
    best = max(r.labelled_auroc for r in result.results)
    chosen = next(r for r in result.results if r.method == result.recommended)
    assert chosen.labelled_auroc >= best - 0.02, "the pick is the best on the real (labelled) defects, or within the tie margin"
    assert "labelled defects" in result.reason and result.recommended in result.reason


def test_without_labelled_defects_synthetic_ones_decide_and_a_failing_candidate_is_reported(parts_dir):
    broken = Candidate("ganomaly", image_size=32, epochs=1, params={"width": 8, "nz": 16, "w_con": 1e9})  # out of range
    result = advise(open_dataset(parts_dir), [QUICK[0], broken], device="cpu")
    assert result.n_labelled == 0 and result.results[0].error == ""
    assert np.isnan(result.results[0].labelled_auroc) and result.results[0].synthetic_auroc > 0.5
    assert "w_con" in result.results[1].error and np.isnan(result.results[1].synthetic_auroc)
    assert result.recommended == "ganomaly" and "synthetic defects" in result.reason


def test_advise_refuses_what_it_cannot_compare(tmp_path):
    with pytest.raises(AdviseError, match="unknown method"):
        candidates_available(["no-such-method"])
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), make_part(np.random.default_rng(i)))
    with pytest.raises(AdviseError, match="at least 8 good"):
        advise(open_dataset(tmp_path), QUICK, device="cpu")


def test_cli_advise_prints_the_table_and_the_recommendation(mvtec_parts, tmp_home, capsys):
    assert main(["advise", str(mvtec_parts), "--methods", "autoencoder", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["recommended"] == "autoencoder" and len(out["results"]) == 1 and out["n_labelled"] == 6
    assert main(["advise", str(mvtec_parts), "--methods", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
