"""The live controller for real: a registry in tmp_path, the tiny trained model, a watched folder
or a looping video, an SQLite results store. Start/stop, feedback into the pool, promote and
discard, and following the registry (a promote made elsewhere swaps the model of a running run)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inspector.data.images import write_image
from inspector.data.sources import write_video
from inspector.engine.live_controller import ErrorThrottle, LiveController, registry_name
from inspector.engine.predictor import Predictor
from inspector.engine.registry import ModelRegistry, RegistryError
from inspector.engine.retrain import FeedbackPool
from tests.test_live import fresh, typical_goods, unmistakable_defect, wait_for

NG_AT = {2, 5}  # frames of the folder that are defective


@pytest.fixture
def registry(tiny_bundle, tmp_home, tmp_path):
    """'line' v1 in use, and a candidate v2 (the same weights) waiting for a promote."""
    reg = ModelRegistry(tmp_path / "models")
    reg.add(fresh(tiny_bundle), "line")
    reg.add(fresh(tiny_bundle), "line", parent="line@v1", activate=False)
    return reg


@pytest.fixture
def parts(tiny_bundle):
    """Seven good parts the model is sure of, and defects it cannot miss, at NG_AT."""
    predictor = Predictor(fresh(tiny_bundle), "cpu")
    rng = np.random.default_rng(21)
    goods = iter(typical_goods(predictor, rng, 8 - len(NG_AT)))
    return [unmistakable_defect(predictor, rng) if i in NG_AT else next(goods) for i in range(8)]


@pytest.fixture
def folder(parts, tmp_path):
    root = tmp_path / "camera"
    for i, image in enumerate(parts):
        write_image(root / f"part{i:02d}.png", image)
    return root


@pytest.fixture
def controller(registry, tmp_path):
    c = LiveController(registry, store_path=tmp_path / "results.sqlite", device="cpu")
    yield c
    c.close()


def run_folder(controller: LiveController, folder, n: int, **kwargs) -> list:
    """Inspect the first ``n`` files of ``folder`` with 'line' and wait (bounded) for the end."""
    results = []
    source = controller.open_source(str(folder), include_existing=True)
    live = controller.start(source, controller.load("line"), max_frames=n, follow="line", on_result=results.append, **kwargs)
    assert live.finished.wait(30), "the run did not end"
    return results


def test_start_and_stop_store_every_part_of_a_watched_folder(controller, folder, tmp_path):
    assert controller.existing_store() is None, "no database before the first run, and none made by asking"
    assert controller.models() == [("line", 1)]
    results = run_folder(controller, folder, 8)
    assert not controller.running and controller.model_name == "line"
    store = controller.store
    rows = store.query(newest_first=False)
    assert [r.frame_name for r in rows] == [f"part{i:02d}.png" for i in range(8)]
    assert {i for i, r in enumerate(rows) if r.decision == "NG"} == NG_AT
    assert {r.model_ref for r in rows} == {"line@v1"} and all(r.stored for r in results)
    assert controller.existing_store() is store

    # a run that does not end by itself is stopped, the part being scored committed first
    video = write_video(tmp_path / "line.avi", [np.zeros((64, 64), np.uint8)] * 4)
    source = controller.open_source(str(video), loop=True)
    controller.start(source, controller.load("line"))
    with pytest.raises(RuntimeError):
        controller.start(source, controller.load("line"))
    assert wait_for(lambda: controller.live.stats().inspected >= 3, timeout=20)
    stats = controller.stop()
    assert not controller.running and stats.inspected >= 3 and not stats.running
    assert store.count()["total"] == 8 + stats.inspected
    controller.close()
    assert controller.store is None


def test_feedback_goes_into_the_store_and_the_models_pool(controller, folder):
    results = run_folder(controller, folder, 8)
    ng = [r for r in results if r.decision == "NG"]
    ok = [r for r in results if r.decision == "OK"]
    path = controller.give_feedback(ng[0], "false_alarm")
    assert path.is_file() and path.parent == FeedbackPool("line").good_dir
    assert controller.store.get(ng[0].record_id).feedback == "false_alarm"
    controller.give_feedback(ok[0], "confirmed")  # an OK frame the store kept no image of: the inspected image goes in
    assert controller.pool_counts() == {"good": 1, "defects": 1}
    controller.give_feedback(ng[0], "confirmed")  # changing one's mind moves the image
    assert controller.pool_counts() == {"good": 0, "defects": 2}
    with pytest.raises(ValueError, match="not stored"):
        controller.give_feedback(dataclasses.replace(ng[1], record_id=None), "false_alarm")


def test_promote_swaps_a_running_run_and_discard_keeps_the_version_in_use(controller, registry, parts, tmp_path):
    controller.select("line")
    assert [(r["version"], r["active"], r["parent"]) for r in controller.lineage()] == [(1, True, None), (2, False, "line@v1")]
    video = write_video(tmp_path / "line.avi", parts)
    seen = []
    controller.start(controller.open_source(str(video), loop=True), controller.load("line"), follow="line",
                     follow_interval_s=60, on_result=lambda r: seen.append(r.model_version))
    assert wait_for(lambda: 1 in seen, timeout=20)
    entry = controller.promote(2)  # swapped at once, not by the (slow) follower
    assert entry.version == 2 and registry.active("line").version == 2
    assert wait_for(lambda: seen[-1] == 2, timeout=20)
    assert controller.running, "the run went on through the swap"
    with pytest.raises(RegistryError, match="in use"):
        controller.discard(2)
    controller.promote(1)  # roll back
    assert wait_for(lambda: seen[-1] == 1, timeout=20)
    controller.discard(2)
    assert [e.version for e in registry.versions("line")] == [1]
    assert [r["version"] for r in controller.lineage()] == [1]


def test_a_run_follows_a_promote_made_elsewhere(controller, registry, parts, tmp_path):
    video = write_video(tmp_path / "line.avi", parts)
    seen = []
    controller.start(controller.open_source(str(video), loop=True), controller.load("line"), follow="line",
                     follow_interval_s=0.2, on_result=lambda r: seen.append(r.model_version))
    assert wait_for(lambda: 1 in seen, timeout=20)
    ModelRegistry(registry.root).set_active("line", 2)  # another window, or `inspector models activate line@v2`
    assert wait_for(lambda: seen[-1] == 2, timeout=20)
    assert controller.live.stats().model == "line@v2" and controller.running


def test_a_model_file_runs_under_its_own_name_and_follows_nothing(controller, tiny_bundle, tmp_path):
    bundle = fresh(tiny_bundle)
    bundle.info.name, bundle.info.version = "", 0
    path = bundle.save(tmp_path / "cells.inspector")
    assert controller.load(path).info.name == "cells"
    assert registry_name(path) is None and registry_name("line@v2") is None and registry_name("line") == "line"


def test_repeated_problems_are_shown_once_per_interval_with_a_count():
    now = [0.0]
    throttle = ErrorThrottle(every_s=30, clock=lambda: now[0])
    assert throttle.admit("store-image") == 0
    assert throttle.admit("store-image") is None and throttle.admit("store-image") is None
    assert throttle.admit("score") == 0  # another kind is its own
    now[0] = 31.0
    assert throttle.admit("store-image") == 2  # shown again, saying how many were held back
    assert throttle.admit("store-image") is None
