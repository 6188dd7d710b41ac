"""Region rules everywhere in the app (pytest-qt, offscreen): the Evaluate page's figures at the
threshold decided by the model's rules, the Live page's frame and NG review with the defect
regions outlined, and the History page's stored regions and rule on the saved image."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

pytest.importorskip("pytestqt")

from inspector.data.datasets import DEFECT, GOOD
from inspector.data.sources import write_video
from inspector.engine.bundle import ModelBundle
from inspector.engine.decision import NG, OK
from inspector.engine.metrics import confusion
from inspector.engine.predictor import Predictor
from inspector.engine.regions import DEFAULT_LEVEL, RegionRules, find_regions
from inspector.engine.registry import ModelRegistry
from inspector.engine.results_store import ResultsStore
from tests.conftest import make_part
from tests.test_live import typical_goods, unmistakable_defect


def fresh(bundle: ModelBundle) -> ModelBundle:
    return ModelBundle(copy.deepcopy(bundle.model), copy.deepcopy(bundle.info))


@pytest.fixture(scope="module")
def clear_defects(tiny_bundle, tmp_path_factory):
    """An MVTec folder: 8 good parts to train on, 6 good ones the model passes and 6 it flags."""
    predictor = Predictor(tiny_bundle, "cpu")
    rng = np.random.default_rng(21)
    root = tmp_path_factory.mktemp("ruled") / "rings"
    for sub in ("train/good", "test/good", "test/blob"):
        (root / sub).mkdir(parents=True)
    for i in range(8):
        cv2.imwrite(str(root / "train/good" / f"{i:03d}.png"), make_part(rng))
    for i, image in enumerate(typical_goods(predictor, rng, 6)):
        cv2.imwrite(str(root / "test/good" / f"{i:03d}.png"), image)
    for i in range(6):
        cv2.imwrite(str(root / "test/blob" / f"{i:03d}.png"), unmistakable_defect(predictor, rng))
    return root


def expected_counts(session, rules: RegionRules | None) -> tuple[dict, list]:
    """The confusion matrix the one predictor's own decisions give with ``rules``, worked out
    here, not by the page; and the score-NG images' largest region areas."""
    info = copy.deepcopy(session.predictor.info)
    info.rules = rules
    predictor = Predictor(ModelBundle(session.predictor.model, info), "cpu")
    predictor.threshold = session.threshold
    samples = [s for s in session.dataset.test if s.label in (GOOD, DEFECT)]
    labels, ng, largest = [], [], []
    for path, p in predictor.predict_paths([s.path for s in samples]):
        labels.append(int(next(s for s in samples if s.path == path).label == DEFECT))
        ng.append(p.decision == NG)
        if p.score > p.threshold and p.regions:
            largest.append(p.regions[0].area)
    return confusion(labels, ng), sorted(largest)


def test_evaluate_page_decides_by_the_models_region_rules(qtbot, tiny_bundle, tmp_home, clear_defects):
    from inspector.gui.pages.evaluate_page import EvaluatePage
    from inspector.gui.session import Session

    ModelRegistry().add(fresh(tiny_bundle), "parts")
    session = Session()
    session.open_folder(clear_defects)
    session.set_predictor(Predictor.open("parts", device="cpu"))
    page = EvaluatePage(session)
    qtbot.addWidget(page)

    # no rules: the score decides, as before
    with qtbot.waitSignal(page.evaluated, timeout=30000):
        page.evaluate()
    by_score = dict(page.confusion.counts)
    assert by_score == page.scoreset.at(session.threshold).confusion == expected_counts(session, None)[0]
    assert by_score["tp"] == 6 and page.rules_note.text() == "" and page.rule_inputs is None
    auroc = page.auroc.text()

    # every region tolerated: the flagged parts pass; the regions are found again (another level)
    tolerant = RegionRules(level=0.05, ok_below_area=1e9)
    with qtbot.waitSignal(page.evaluated, timeout=30000):
        session.save_rules(tolerant)
    counts, largest = expected_counts(session, tolerant)
    assert page.confusion.counts == counts and counts["tp"] == 0 and counts != by_score
    assert page.recall.text() == "0.0 %" and page.f1.text() == "0.000"
    assert "region rules decided" in page.rules_note.text() and "with the region rules" in page.at_box.title()
    assert page.auroc.text() == auroc and "by score alone" in page.overall_box.title()  # ranking: the score
    blobs = [s.path for s in session.dataset.test if s.label == DEFECT]
    assert {session.decision(session.scores[p], p) for p in blobs} == {OK}  # the other pages judge alike

    # a rule at the same level: decided again at once from the regions already found
    assert len(largest) >= 2 and largest[0] < largest[-1], "the flagged parts' regions should differ in size"
    middle = RegionRules(level=0.05, ok_below_area=(largest[0] + largest[-1]) / 2)  # the smallest pass, the largest not
    inputs = page.rule_inputs
    session.save_rules(middle)
    assert page.rule_inputs is inputs and not page.job.running
    tolerated = counts
    counts = expected_counts(session, middle)[0]
    assert page.confusion.counts == counts

    def flagged(c: dict) -> int:
        return c["tp"] + c["fp"]

    assert flagged(tolerated) < flagged(counts) < flagged(by_score)

    # the threshold line moves the rule-decided figures too
    session.set_threshold(float(page.scoreset.scores.max()) + 1)
    assert page.confusion.counts == expected_counts(session, middle)[0] == {"tn": 6, "fp": 0, "fn": 6, "tp": 0}

    # rules removed: the score alone again
    session.save_rules(None)
    session.reset_threshold()
    assert page.confusion.counts == by_score and page.rules_note.text() == ""


def test_evaluate_page_with_good_images_only_judges_synthetic_defects_by_the_rules(qtbot, tiny_bundle, tmp_home, parts_dir):
    from inspector.gui.pages.evaluate_page import EvaluatePage
    from inspector.gui.session import Session

    ModelRegistry().add(fresh(tiny_bundle), "parts")
    session = Session()
    session.open_folder(parts_dir)
    session.set_predictor(Predictor.open("parts", device="cpu"))
    session.save_rules(RegionRules(level=0.01, ok_below_area=1e9))  # every part with a region is OK
    page = EvaluatePage(session)
    qtbot.addWidget(page)
    with qtbot.waitSignal(page.evaluated, timeout=60000):
        page.evaluate()
    result = page.scoreset
    assert result.synthetic and len(page.rule_inputs.rows) == len(result.scores)
    assert result.at(session.threshold).recall > 0  # by score some synthetic defects are caught
    assert all(areas for areas, _ in page.rule_inputs.rows)  # each has a region at this low level
    assert "<b>0.0 %</b> of synthetic defects caught" in page.good_only.text()
    assert "<b>0.0 %</b> false alarms" in page.good_only.text()


# --- live and history --------------------------------------------------------------------------------
ROI = (24, 8, 64, 64)


@pytest.fixture
def ruled_line(tiny_bundle, tmp_home, tmp_path):
    """A registered model 'line' whose rules find regions at heat 0.3 (the score still decides),
    and a video of 12 frames of 96 × 80 with the part in the ROI, a clear defect at 3 and 9."""
    bundle = fresh(tiny_bundle)
    bundle.info.rules = RegionRules(level=0.3)
    reg = ModelRegistry()
    reg.add(bundle, "line")
    predictor = Predictor(reg.load("line"), "cpu")
    rng = np.random.default_rng(9)
    goods = typical_goods(predictor, rng, 5)
    frames = []
    for i in range(12):
        frame = np.full((80, 96), 90, np.uint8)
        x, y, w, h = ROI
        frame[y : y + h, x : x + w] = unmistakable_defect(predictor, rng) if i % 6 == 3 else goods[i % len(goods)]
        frames.append(frame)
    return reg, write_video(tmp_path / "line.avi", frames, fps=60)


def test_live_ng_frames_have_their_regions_outlined_and_history_shows_them_stored(qtbot, ruled_line, tmp_path):
    from inspector.gui.pages.history_page import HistoryPage
    from inspector.gui.pages.live.page import LivePage

    reg, video = ruled_line
    page = LivePage(registry=reg, store_path=tmp_path / "results.sqlite")
    qtbot.addWidget(page)
    page.resize(1000, 700)
    qtbot.waitUntil(lambda: page.source_panel.model.count() == 1, timeout=10000)
    view = page.live_view
    page.source_panel.source.setCurrentText(str(video))
    page.set_roi(ROI)
    with qtbot.waitSignal(page.started, timeout=10000):
        page.start()
    qtbot.waitUntil(lambda: len(view.ng_history) >= 2, timeout=20000)
    with qtbot.waitSignal(page.stopped, timeout=10000):
        page.stop()

    for step in (-1, -1):  # the NG review: each frame stepped to is outlined where its regions are
        view.step_ng(step)
        shown = page.shown
        assert shown.decision == NG and view.reviewing
        regions = find_regions(shown.prediction.heat, shown.prediction.anomaly_map, 0.3)
        assert regions, "a clear defect should make a region at heat 0.3"
        x0, y0 = ROI[:2]
        assert view.view.outlines() == [(x + x0, y + y0, w, h) for x, y, w, h in (r.bbox for r in regions)]
        assert view.regions_label.text() == f"{len(regions)} · largest {regions[0].area:.4g} px"
        assert "score above threshold" in view.score_label.text()  # the rule that decided
        view.grab()  # paints the frame with its outlines and the ROI
    view.show_regions.setChecked(False)
    assert view.view.outlines() == []
    view.show_regions.setChecked(True)
    assert view.view.outlines()

    # History: the stored result of the reviewed frame, its regions on its saved image
    store = page.controller.store
    history = HistoryPage(open_store=page.controller.existing_store)
    qtbot.addWidget(history)
    history.reload()
    history.select_id(page.shown.record_id)
    row = history.selected_row()
    assert row.id == page.shown.record_id and row.image is not None
    assert history.preview.view.image().shape[:2] == (64, 64)  # the inspected region, as the regions
    assert history.preview.view.outlines() == [r.bbox for r in regions] == [r.bbox for r in store.get(row.id).region_list()]
    assert "decided by: score above threshold" in history.preview_text.text()
    page.shutdown()


def test_history_preview_outlines_the_stored_regions_and_shows_the_rule(qtbot, tmp_path):
    from inspector.gui.pages.history_page import HistoryPage

    store = ResultsStore(tmp_path / "r.sqlite")
    heat = np.full((30, 40), 0.05, np.float32)
    heat[4:10, 5:17] = 0.9
    heat[20:23, 30:33] = 0.9
    regions = find_regions(heat, heat, DEFAULT_LEVEL)
    image = np.full((30, 40), 120, np.uint8)
    ruled = store.record(source="cam", frame_id=1, model="m", model_version=2, score=2.0, threshold=1.0, decision=NG,
                         image=image, regions=regions, rule="region of 72 px ≥ 50 px")
    plain = store.record(source="cam", frame_id=2, model="m", model_version=1, score=2.0, threshold=1.0, decision=NG,
                         image=image)  # from before regions were stored
    history = HistoryPage(store=store)
    qtbot.addWidget(history)
    history.refresh()

    history.select_id(ruled)
    assert history.preview.view.outlines() == [(5, 4, 12, 6), (30, 20, 3, 3)]
    text = history.preview_text.text()
    assert "decided by: region of 72 px ≥ 50 px" in text and "2 defect region(s), largest 72 px" in text
    history.grab()
    history.show_regions.setChecked(False)
    assert history.preview.view.outlines() == []
    history.show_regions.setChecked(True)

    history.select_id(plain)
    assert history.preview.view.has_image() and history.preview.view.outlines() == []
    assert "decided by" not in history.preview_text.text() and "region" not in history.preview_text.text()
    history.table.clearSelection()
    assert history.preview.view.outlines() == []
    store.close()


def test_a_live_frame_with_its_part_in_a_roi_outlines_on_the_whole_frame(qtbot, tiny_bundle):
    """The live view alone: boxes found on the ROI crop are drawn where the crop lies in the frame."""
    from inspector.data.sources import Frame
    from inspector.engine.live import LiveResult
    from inspector.gui.pages.live.live_view import LiveView

    predictor = Predictor(fresh(tiny_bundle), "cpu")
    part = unmistakable_defect(predictor, np.random.default_rng(4))
    frame_image = np.full((80, 96), 90, np.uint8)
    frame_image[8:72, 24:88] = part
    view = LiveView()
    qtbot.addWidget(view)
    for roi, (dx, dy) in ((ROI, (24, 8)), (None, (0, 0))):
        crop = part if roi else frame_image
        p = predictor.predict(crop)
        p.rules = RegionRules(level=0.3)  # a level the planted blob reaches
        result = LiveResult(Frame(frame_image, 1, 0.0, 0.0, "test"), p, roi, "m", 1, None, 1.0, 1.0, 1)
        view.show_result(result)
        boxes = [(x + dx, y + dy, w, h) for x, y, w, h in (r.bbox for r in p.regions)]
        assert boxes and view.view.outlines() == boxes
