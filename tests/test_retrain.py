"""Operator feedback, one-click retraining, promote / discard / rollback, and the registry's version in use."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from inspector.data.images import list_images, read_image, write_image
from inspector.data.sources import VideoFileSource, write_video
from inspector.engine.bundle import ModelBundle
from inspector.engine.live import LiveInspector
from inspector.engine.predictor import Predictor
from inspector.engine.registry import ModelRegistry, RegistryError
from inspector.engine.results_store import ResultsStore
from inspector.engine.retrain import (
    FeedbackPool,
    RetrainData,
    RetrainError,
    Retrainer,
    discard,
    give_feedback,
    lineage,
    promote,
)
from tests.conftest import make_part
from tests.test_live import typical_goods, unmistakable_defect, wait_for


def fresh(bundle: ModelBundle) -> ModelBundle:
    return ModelBundle(copy.deepcopy(bundle.model), copy.deepcopy(bundle.info))


def false_alarm(predictor, rng, min_ratio=1.15) -> np.ndarray:
    """A good part the model flags clearly (the tiny test model flags ~10% of good parts)."""
    while True:
        image = make_part(rng)
        if predictor.predict(image).score > min_ratio * predictor.threshold:
            return image


# --- the registry's version in use -------------------------------------------------------------------------
def test_registry_active_version(tiny_bundle, tmp_path):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(fresh(tiny_bundle), "line")
    reg.add(fresh(tiny_bundle), "line")
    assert reg.pinned_version("line") is None and reg.active("line").version == 2  # default: the latest
    candidate = reg.add(fresh(tiny_bundle), "line", parent="line@v2", activate=False)
    assert candidate.version == 3 and reg.active("line").version == 2 and reg.resolve("line").name == "v2.inspector"
    assert reg.resolve("line@v3").name == "v3.inspector" and reg.latest("line").version == 3
    reg.set_active("line", 3)
    assert reg.resolve("line").name == "v3.inspector"
    reg.set_active("line", 1)  # roll back
    assert reg.active("line").version == 1
    reg.add(fresh(tiny_bundle), "line")  # a plain add (e.g. `inspector train --name line`) is put in use
    assert reg.active("line").version == 4
    reg.set_active("line", 2)
    reg.delete("line", 2)  # the version in use deleted: back to the latest
    assert reg.pinned_version("line") is None and reg.active("line").version == 4
    with pytest.raises(RegistryError):
        reg.set_active("line", 9)
    reg.delete("line")
    assert reg.names() == []


# --- feedback ------------------------------------------------------------------------------------------------
def test_feedback_goes_to_the_store_and_the_models_pool(tmp_home, tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    image = np.full((16, 16), 99, np.uint8)
    ng = store.record(source="cam", frame_id=1, model="line", model_version=1, score=2, threshold=1, decision="NG", image=image)
    ok = store.record(source="cam", frame_id=2, model="line", model_version=1, score=0, threshold=1, decision="OK", image=image)
    pool = FeedbackPool("line")
    assert pool.folder == tmp_home / "data" / "pools" / "line"
    path = give_feedback(store, ng, "false_alarm")
    assert path.parent == pool.good_dir and read_image(path).mean() == 99
    assert store.get(ng).feedback == "false_alarm"
    give_feedback(store, ng, "confirmed")  # changed their mind: moves to the defects
    assert pool.counts() == {"good": 0, "defects": 1}
    with pytest.raises(RetrainError):  # an OK frame whose image was not kept needs the image
        give_feedback(store, ok, "confirmed")
    give_feedback(store, ok, "confirmed", image=image)
    assert pool.counts() == {"good": 0, "defects": 2} and store.get(ok).image is not None
    give_feedback(store, ng, None)  # withdrawn
    assert pool.counts() == {"good": 0, "defects": 1} and store.get(ng).feedback is None
    assert FeedbackPool("line").counts() == {"good": 0, "defects": 1}  # it is on disk, not in memory


def test_retrain_data_needs_held_out_images(tiny_bundle, parts_dir):
    with pytest.raises(RetrainError, match="does not say which dataset"):
        RetrainData.for_model(fresh(tiny_bundle).info)
    with pytest.raises(RetrainError, match="at least 4"):
        RetrainData.from_paths(list_images(parts_dir), list_images(parts_dir)[:3])
    data = RetrainData.from_paths(list_images(parts_dir)[:30], list_images(parts_dir)[30:])
    assert len(data.calibration) == 5 and len(data.comparison) == 5
    assert not set(data.calibration) & set(data.comparison)


# --- the whole loop: live → feedback → retrain → compare → promote → rollback ---------------------------------
def test_feedback_retrain_promote_and_rollback(tiny_bundle, parts_dir, tmp_home, tmp_path):
    reg = ModelRegistry()
    v1 = reg.add(fresh(tiny_bundle), "line")
    current = Predictor(reg.load("line"), "cpu")
    rng = np.random.default_rng(21)

    # the line: typical parts, three good parts the model flags (false alarms), one real defect
    goods = typical_goods(current, rng, 6)
    false_alarms = [false_alarm(current, rng) for _ in range(3)]
    defect = unmistakable_defect(current, rng)
    frames = goods[:2] + false_alarms + goods[2:4] + [defect] + goods[4:]
    video = write_video(tmp_path / "line.avi", frames)
    store = ResultsStore(tmp_path / "results.sqlite")
    LiveInspector(VideoFileSource(video), current, store).run()
    rows = store.query(newest_first=False)
    assert [r.frame_id for r in rows if r.decision == "NG"] == [2, 3, 4, 7]

    # the operator: the three flagged good parts are fine, the defect is real
    for r in rows[2:5]:
        give_feedback(store, r.id, "false_alarm")
    give_feedback(store, rows[7].id, "confirmed")
    assert FeedbackPool("line").counts() == {"good": 3, "defects": 1}

    # one click: fine-tune in the background while the live loop goes on with v1
    fresh_goods = tmp_path / "held-out"
    for i, image in enumerate(make_part(np.random.default_rng(100 + i)) for i in range(16)):
        write_image(fresh_goods / f"g{i:02d}.png", image)
    data = RetrainData.from_paths(list_images(parts_dir), list_images(fresh_goods), dataset="parts")
    events = []
    result = Retrainer(reg, "line", data=data, epochs=20, pool_share=0.3, device="cpu", on_event=events.append).run()
    v2 = result.entry
    assert v2.version == 2 and v2.info.parent == "line@v1" and result.parent.version == 1
    assert reg.active("line").version == 1, "a retrained version is only a candidate until promoted"
    seen = v2.info.training
    assert seen["retrain"]["parent"] == "line@v1"
    assert sorted(seen["retrain"]["pool"]["good"]) == sorted(p.name for p in FeedbackPool("line").good_paths())
    assert seen["retrain"]["originals"]["n"] == 40 and seen["dataset"] == "parts" and seen["fine_tuned_from"] == "line@v1"
    assert v2.info.threshold.params["calibrated_on"].startswith("8 held-out good images")
    assert events, "training progress is reported"

    # the comparison: same images for both versions
    c = result.comparison
    assert c.n_good == 8 and c.n_confirmed == 1 and c.n_synthetic == 32
    assert c.current.marked_still_flagged == 3 and c.new.marked_still_flagged == 0
    assert c.new.confirmed_detection_rate == 1.0
    assert c.new.auroc_synthetic is not None and c.new.auroc_confirmed is not None
    assert len(c.rows()) == 7 and "metrics" in v2.info.to_dict()
    new = Predictor(reg.load("line@v2"), "cpu")
    assert [new.predict(image).decision for image in false_alarms] == ["OK", "OK", "OK"]
    assert new.predict(defect).decision == "NG"

    # promote and roll back while live inspection runs: it switches the model in use
    looping = LiveInspector(VideoFileSource(video, loop=True, fps=100), current, store)
    looping.follow_registry(reg, "line", interval_s=0.05, device="cpu")
    looping.start()
    try:
        assert wait_for(lambda: looping.last_result is not None)
        assert looping.last_result.model_version == 1
        promote(reg, "line", 2)
        assert wait_for(lambda: looping.last_result.model_version == 2)
        assert looping.running, "swapped without stopping"
        promote(reg, "line", 1)  # a roll back: an earlier version back in use
        assert wait_for(lambda: looping.last_result.model_version == 1)
    finally:
        looping.stop()
    versions = {(r.model, r.model_version) for r in store.query()}
    assert versions == {("line", 1), ("line", 2)}
    assert [row["active"] for row in lineage(reg, "line")] == [True, False]
    assert [row["parent"] for row in lineage(reg, "line")] == [None, "line@v1"]

    # discard: the candidate goes; the version in use cannot be discarded
    with pytest.raises(RegistryError):
        discard(reg, "line", 1)
    discard(reg, "line", 2)
    assert [e.version for e in reg.versions("line")] == [v1.version]
    store.close()


def test_hot_swap_takes_effect_on_the_frames_taken_next(tiny_bundle, tmp_path):
    """Swapped when the fifth result is reported: the frames already taken then (at most one being
    scored and one waiting to be committed per worker) finish with the old model, every later one
    uses the new."""
    rng = np.random.default_rng(1)
    video = write_video(tmp_path / "v.avi", [make_part(rng) for _ in range(4)])
    a, b = Predictor(fresh(tiny_bundle), "cpu"), Predictor(fresh(tiny_bundle), "cpu")
    a.info.name, a.info.version, b.info.name, b.info.version = "a", 1, "b", 7
    b.threshold = -1.0  # everything NG: easy to tell apart
    seen = []
    live = LiveInspector(VideoFileSource(video, loop=True), a, None, max_frames=16)

    def on_result(r):
        seen.append((r.model_ref, r.decision))
        if len(seen) == 5:
            live.set_predictor(b)

    live.on_result = on_result
    stats = live.run()
    old = sum(ref == "a@v1" for ref, _ in seen)
    assert 5 <= old <= 5 + 2 * stats.workers < len(seen) == 16
    assert all(ref == "a@v1" for ref, _ in seen[:old])
    assert seen[old:] == [("b@v7", "NG")] * (16 - old)
    assert live.stats().model == "b@v7"
