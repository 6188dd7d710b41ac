"""Export to ONNX and OpenVINO: parity measured and stored, verdicts unchanged, refusals in one line.

Every exportable method's parity is checked in tests/test_method_contract.py; here one small
GANomaly (conftest's ``tiny_bundle``) goes through everything around it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspector.data.images import list_images, read_image
from inspector.engine.backends import BackendError
from inspector.engine.bundle import ModelBundle, ModelFileError, ModelInfo
from inspector.engine.export import ExportRefused, export, measure_parity
from inspector.engine.exported import EXPORT_FORMAT, META_FILE, ExportedModel, is_exported
from inspector.engine.predictor import Predictor
from inspector.engine.threshold import Threshold
from inspector.models import create_model
from tests.conftest import make_part


@pytest.fixture(scope="module")
def good(parts_dir):
    return [read_image(p) for p in list_images(parts_dir)[:12]]


@pytest.fixture(scope="module")
def onnx_export(tiny_bundle, good, tmp_path_factory):
    return export(tiny_bundle, tmp_path_factory.mktemp("x") / "tiny", "onnx", images=good).model


def test_an_export_scores_and_decides_as_the_torch_model_on_every_installed_runtime(tiny_bundle, onnx_export):
    parity = onnx_export.parity
    assert set(parity["runtimes"]) == {f"{r}/{g}" for r in onnx_export.runtimes() for g in ("score", "full")}
    assert parity["flips"] == 0 and parity["max_score_diff_relative"] < 1e-4 and parity["good_images"] == 12
    rng = np.random.default_rng(7)
    parts = [make_part(rng) for _ in range(6)] + [np.full((64, 64), 255, np.uint8)]  # unseen parts, one far off
    torch_side = Predictor(tiny_bundle, "cpu").predict_batch(parts)
    for runtime in onnx_export.runtimes():
        exported = Predictor(onnx_export, "cpu", runtime)
        assert exported.runtime == runtime
        got = exported.predict_batch(parts)
        assert [p.decision for p in got] == [p.decision for p in torch_side]
        np.testing.assert_allclose([p.score for p in got], [p.score for p in torch_side], rtol=1e-4, atol=1e-6)
        assert got[0].reconstruction is not None and got[0].reconstruction.shape == parts[0].shape
        lean = exported.predict(parts[0], reconstruct=False)
        assert lean.reconstruction is None and lean.score == pytest.approx(got[0].score, rel=1e-6)


def test_the_export_keeps_the_model_files_metadata(tiny_bundle, onnx_export):
    assert onnx_export.info.to_dict() == json.loads(json.dumps(tiny_bundle.info.to_dict()))
    assert onnx_export.export["format"] == "onnx" and onnx_export.export["precision"] == "fp32"
    assert onnx_export.export["export_format"] == EXPORT_FORMAT


def test_openvino_exports_run_on_openvino_and_onnx_runtime_says_it_cannot(tiny_bundle, good, tmp_path):
    model = export(tiny_bundle, tmp_path / "ov", "openvino", images=good).model
    assert (tmp_path / "ov" / "score.xml").is_file() and set(model.parity["runtimes"]) == {"openvino/score", "openvino/full"}
    assert Predictor(model, "cpu").runtime == "openvino"
    with pytest.raises(BackendError, match="openvino export: onnxruntime cannot run it"):
        Predictor(model, "cpu", "onnxruntime")
    with pytest.raises(BackendError, match="runs on openvino, not torch"):
        Predictor(model, "cpu", "torch")


def test_parity_catches_a_graph_that_is_not_the_models_network(tiny_bundle, onnx_export, good):
    """The same measurement against another network (a fresh, untrained GANomaly): verdicts flip
    or scores move far past the bound, and an export with that parity is refused."""
    other = create_model("ganomaly", **tiny_bundle.info.config)
    stranger = ModelBundle(other.eval(), tiny_bundle.info)
    parity = measure_parity(stranger, onnx_export, good)
    assert parity["flips"] > 0 or parity["max_score_diff_relative"] > 1e-2


def test_transgan_is_refused_with_the_reason_and_nothing_is_left_behind(tmp_path, good):
    model = create_model("transgan", image_size=32, dim=32, depth=1, d_dim=16, d_depth=1, nz=16, encoder_width=8)
    bundle = ModelBundle(model.eval(), ModelInfo("transgan", model.config.to_dict(), Threshold(1.0, "test")))
    with pytest.raises(ExportRefused, match="gradient descent"):
        export(bundle, tmp_path / "t", "onnx", images=good)
    assert list(tmp_path.iterdir()) == []


def test_a_destination_is_only_replaced_when_it_is_an_export_and_force_is_given(tiny_bundle, good, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ExportRefused, match="is not an exported model"):
        export(tiny_bundle, folder, images=good, force=True)
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    first = export(tiny_bundle, tmp_path / "m", images=good).model
    with pytest.raises(ExportRefused, match="--force"):
        export(tiny_bundle, first.path, images=good)
    again = export(tiny_bundle, first.path, images=good, force=True).model
    assert is_exported(again.path) and sorted(p.name for p in tmp_path.iterdir()) == ["m", "photos"]  # no temp folders left


def test_without_parity_images_the_export_is_refused_in_one_line(tiny_bundle, tmp_path):
    with pytest.raises(ExportRefused, match="--data"):
        export(tiny_bundle.__class__(tiny_bundle.model, ModelInfo("ganomaly", tiny_bundle.info.config, tiny_bundle.info.threshold)),
               tmp_path / "m")


def test_the_held_out_images_are_found_again_in_the_folder_the_model_was_trained_on(parts_dir, tmp_home):
    from inspector.data.datasets import open_dataset
    from inspector.engine.registry import ModelRegistry
    from inspector.engine.trainer import TrainConfig
    from inspector.engine.workflow import train_dataset

    config = TrainConfig(method="ganomaly", image_size=32, epochs=1, batch_size=8, device="cpu", params={"width": 8, "nz": 16})
    entry = train_dataset(open_dataset(parts_dir), config, ModelRegistry(), name="parts")
    result = export(ModelBundle.load(entry.path), tmp_home / "export")  # no --data: the folder the model records
    assert result.parity["good_images"] == entry.info.training["n_holdout"] == 8


@pytest.mark.parametrize("damage,message", [
    (lambda d: d.update(export={**d["export"], "export_format": EXPORT_FORMAT + 1}), "newer than this inspector reads"),
    (lambda d: d.update(export={**d["export"], "format": "tflite"}), "unknown export format"),
    (lambda d: d["model"].update(threshold={"value": "nan?"}), "threshold"),
])
def test_a_damaged_export_is_refused_in_one_line(onnx_export, tmp_path, damage, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_export.path, copy)
    meta = json.loads((copy / META_FILE).read_text())
    damage(meta)
    (copy / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=message) as e:
        ExportedModel.load(copy)
    assert "\n" not in str(e.value) and str(copy) in str(e.value)


def test_a_missing_graph_is_named(onnx_export, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_export.path, copy)
    (copy / "full.onnx").unlink()
    with pytest.raises(ModelFileError, match="full graph"):
        ExportedModel.load(copy)


def test_runtime_auto_measures_once_and_remembers_per_machine(onnx_export, tmp_home):
    from inspector.engine.runtime_choice import CHOICES_FILE

    first = Predictor.open(onnx_export.path, "cpu", runtime="auto").runtime
    remembered = json.loads((tmp_home / "data" / CHOICES_FILE).read_text())
    assert list(remembered.values()) == [first]
    assert Predictor.open(onnx_export.path, "cpu", runtime="auto").runtime == first


def test_int8_reports_what_quantisation_changes(tiny_bundle, good, tmp_path):
    result = export(tiny_bundle, tmp_path / "q", "onnx", int8=True, images=good, force=True)
    parity = result.parity
    assert result.model.precision == "int8" and parity["bound"]["forced"] == bool(parity["flips"])
    assert all(0.0 <= r["auroc"] <= 1.0 for r in parity["runtimes"].values())
