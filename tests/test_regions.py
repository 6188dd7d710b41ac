"""Defect regions and per-model region rules: found where a defect is, judged by the one rule
(engine.decision.decide_with_rules), stored with the model (format 2), applied by the one
predictor in the CLI, live results and the app."""

from __future__ import annotations

import csv
import json
import math
import sqlite3

import cv2
import numpy as np
import pytest

from inspector.engine.bundle import FORMAT_VERSION, ModelBundle, ModelFileError, ModelInfo, read_info
from inspector.engine.decision import NG, OK, decide, decide_with_rules
from inspector.engine.predictor import Prediction, Predictor
from inspector.engine.regions import DEFAULT_LEVEL, Region, RegionRules, find_regions
from inspector.engine.registry import ModelRegistry
from inspector.engine.results_store import SCHEMA_VERSION, ResultsStore
from tests.conftest import make_part


def _heat(shape=(60, 80), boxes=(), value=0.9) -> np.ndarray:
    """A cold heat map with hot rectangles (x, y, w, h)."""
    heat = np.full(shape, 0.05, np.float32)
    for x, y, w, h in boxes:
        heat[y : y + h, x : x + w] = value
    return heat


def _prediction(score: float, threshold: float, heat: np.ndarray, rules: RegionRules | None) -> Prediction:
    image = np.zeros(heat.shape, np.uint8)
    return Prediction(score, threshold, heat * 2.0, heat, image, image, rules=rules)


# --- finding regions -------------------------------------------------------------------------------
def test_regions_are_the_hot_connected_areas_largest_first_with_box_area_peak_and_mean():
    heat = _heat(boxes=[(10, 5, 6, 4), (40, 30, 12, 10)])
    heat[34, 45] = 1.0
    regions = find_regions(heat, heat * 3, DEFAULT_LEVEL)
    assert [r.bbox for r in regions] == [(40, 30, 12, 10), (10, 5, 6, 4)]
    assert [r.area_px for r in regions] == [120, 24] and all(r.area_mm2 is None for r in regions)
    assert regions[0].peak == pytest.approx(3.0) and regions[0].mean == pytest.approx((119 * 2.7 + 3.0) / 120)
    assert regions[1].area == 24.0  # pixels without a pixel size
    mm = find_regions(heat, heat, DEFAULT_LEVEL, pixel_size_mm=0.05)
    assert mm[0].area_mm2 == pytest.approx(120 * 0.05**2) and mm[0].area == mm[0].area_mm2
    assert find_regions(_heat(), _heat(), DEFAULT_LEVEL) == []
    assert len(find_regions(heat, heat, DEFAULT_LEVEL, max_regions=1)) == 1  # the largest kept
    assert Region.from_dict(json.loads(json.dumps(regions[0].to_dict()))) == regions[0]


def test_the_default_level_sits_at_about_the_good_pixels_99_9_quantile():
    # heat = (map - median) / (1.5 q999 - median) (trainer._map_scale): q999 lands at 0.5..0.67
    for median_share in (0.0, 0.2, 0.5):
        q = 1.0
        m = median_share * q
        assert 0.5 <= (q - m) / (1.5 * q - m) <= 0.67
    assert DEFAULT_LEVEL == 0.6


def test_regions_of_a_planted_defect_through_the_predictor(tiny_bundle):
    rng = np.random.default_rng(5)
    image = make_part(rng)
    image[8:20, 40:52] = 255  # a bright 12 × 12 patch on the dark background
    predictor = Predictor(tiny_bundle, "cpu")
    prediction = predictor.predict(image)
    regions = find_regions(prediction.heat, prediction.anomaly_map, 0.5)
    assert regions, "the planted defect gave no region"
    x, y, w, h = regions[0].bbox
    assert x <= 44 and y <= 12 and x + w >= 48 and y + h >= 16  # the largest region covers the defect's core
    assert 144 / 4 <= regions[0].area_px <= 144 * 4
    assert regions[0].peak >= prediction.anomaly_map[8:20, 40:52].max() * 0.999
    assert prediction.rules is None and "regions" not in prediction.__dict__  # not computed until asked
    assert prediction.regions == find_regions(prediction.heat, prediction.anomaly_map, DEFAULT_LEVEL)


# --- the rules -------------------------------------------------------------------------------------
def test_rules_validate_in_one_line_and_round_trip():
    rules = RegionRules(level=0.5, pixel_size_mm=0.1, ok_below_area=0.5, ng_above_area=2.0, max_regions=3)
    assert RegionRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules
    assert rules.unit == "mm²" and RegionRules().unit == "px"
    bad = [dict(level=0), dict(level=1.01), dict(level=math.nan), dict(pixel_size_mm=0), dict(ok_below_area=-1),
           dict(ng_above_area=math.inf), dict(max_regions=-1), dict(max_regions=2.5), dict(max_regions=True),
           dict(ok_below_area=5.0, ng_above_area=1.0)]
    for kwargs in bad:
        with pytest.raises(ValueError) as error:
            RegionRules(**kwargs)
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown region rule"):
        RegionRules.from_dict({"level": 0.5, "min_gap": 3})


def test_a_rule_turns_a_small_region_ng_into_ok_and_a_large_region_ok_into_ng():
    small, large = _heat(boxes=[(10, 10, 3, 3)]), _heat(boxes=[(10, 10, 20, 20)])
    assert _prediction(2.0, 1.0, small, None).decision == NG  # the score alone
    tolerant = RegionRules(ok_below_area=20)
    p = _prediction(2.0, 1.0, small, tolerant)
    assert p.decision == OK and "tolerated" in p.reason
    assert _prediction(2.0, 1.0, large, tolerant).decision == NG  # 400 px is no blemish
    strict = RegionRules(ng_above_area=100)
    assert _prediction(0.5, 1.0, small, strict).decision == OK
    p = _prediction(0.5, 1.0, large, strict)
    assert p.decision == NG and "≥ 100 px" in p.reason
    mm = RegionRules(pixel_size_mm=0.1, ng_above_area=3.0)  # 400 px = 4 mm², 9 px = 0.09 mm²
    assert _prediction(0.5, 1.0, large, mm).decision == NG and _prediction(0.5, 1.0, small, mm).decision == OK


def test_more_regions_than_allowed_is_ng():
    three = _heat(boxes=[(2, 2, 2, 2), (20, 20, 2, 2), (40, 40, 2, 2)])
    assert _prediction(0.5, 1.0, three, RegionRules(max_regions=3)).decision == OK
    p = _prediction(0.5, 1.0, three, RegionRules(max_regions=2))
    assert p.decision == NG and "3 regions" in p.reason


def test_fail_closed_a_score_ng_without_region_and_anything_not_finite_stay_ng():
    rules = RegionRules(ok_below_area=1e9)
    p = _prediction(2.0, 1.0, _heat(), rules)
    assert p.regions == [] and p.decision == NG  # nothing to tolerate
    small = _heat(boxes=[(10, 10, 3, 3)])
    for score, threshold in ((math.nan, 1.0), (math.inf, 1.0), (0.5, math.nan), (-math.inf, 1.0)):
        assert _prediction(score, threshold, small, rules).decision == NG
    broken = small.copy()
    broken[0, 0] = np.nan
    assert _prediction(0.5, 1.0, broken, rules).decision == NG  # a map that is not a number
    assert _prediction(0.5, 1.0, broken, None).decision == OK  # without rules: as before, the score decides
    assert decide_with_rules(0.5, 1.0, [], None) == (decide(0.5, 1.0), "score within threshold")
    assert decide_with_rules(math.nan, 1.0, [1.0], rules)[0] == NG


# --- stored with the model -------------------------------------------------------------------------
def _header(path):
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n])["__metadata__"]


def test_rules_are_saved_with_the_model_as_format_2_and_format_1_still_loads(tiny_bundle, tmp_path):
    assert FORMAT_VERSION == 3  # rules alone still need only format 2
    plain = tiny_bundle.save(tmp_path / "plain.inspector")
    assert _header(plain)["format"] == "1" and read_info(plain).rules is None  # no rules: stays format 1
    rules = RegionRules(level=0.5, pixel_size_mm=0.02, ok_below_area=0.1, max_regions=4)
    info = ModelInfo.from_dict(tiny_bundle.info.to_dict())
    info.rules = rules
    ruled = ModelBundle(tiny_bundle.model, info).save(tmp_path / "ruled.inspector")
    header = _header(ruled)
    assert header["format"] == "2" and json.loads(header["inspector"])["format_version"] == 2  # a 0.1.0 reader refuses it
    loaded = ModelBundle.load(ruled)
    assert loaded.info.rules == rules and loaded.info.format_version == 2 and read_info(ruled).rules == rules
    assert ModelBundle.load(plain).info.rules is None

    # a file that says format 1 but holds rules is refused: a format-1 reader would drop them
    data = ruled.read_bytes()
    n = int.from_bytes(data[:8], "little")
    table = json.loads(data[8 : 8 + n])
    table["__metadata__"]["format"] = "1"
    meta = json.loads(table["__metadata__"]["inspector"])
    meta["format_version"] = 1
    table["__metadata__"]["inspector"] = json.dumps(meta)
    body = json.dumps(table).encode()
    (tmp_path / "lying.inspector").write_bytes(len(body).to_bytes(8, "little") + body + data[8 + n :])
    with pytest.raises(ModelFileError, match="holds region rules, which needs model file format 2"):
        read_info(tmp_path / "lying.inspector")
    meta["format_version"], meta["rules"] = 2, {"level": 2.0}
    table["__metadata__"].update(format="2", inspector=json.dumps(meta))
    body = json.dumps(table).encode()
    (tmp_path / "bad.inspector").write_bytes(len(body).to_bytes(8, "little") + body + data[8 + n :])
    with pytest.raises(ModelFileError, match="region rules: region level must be"):
        read_info(tmp_path / "bad.inspector")


def test_the_registry_saves_a_new_version_with_rules_and_the_predictor_applies_them(tiny_bundle, tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    first = registry.add(tiny_bundle, "parts")
    rules = RegionRules(level=0.3, ng_above_area=1)
    entry = registry.add_rules_version(registry.load("parts"), rules)
    assert (entry.version, entry.info.parent, entry.info.rules) == (2, "parts@v1", rules)
    assert registry.load("parts@v1").info.rules is None and first.info.rules is None
    threshold = registry.add_threshold_version(registry.load("parts"), 0.123)
    assert threshold.info.rules == rules and threshold.info.threshold.value == 0.123  # the rules carry on
    cleared = registry.add_rules_version(registry.load("parts"), None)
    assert cleared.info.rules is None and _header(cleared.path)["format"] == "1"

    image = make_part(np.random.default_rng(1))
    image[20:30, 20:30] = 0
    predictor = Predictor.open("parts@v2", device="cpu", registry=registry)
    p = predictor.predict(image)
    assert p.rules == rules
    expected = decide_with_rules(p.score, p.threshold, [r.area for r in p.regions], rules, p.map_finite)
    assert (p.decision, p.reason) == expected
    assert p.regions == find_regions(p.heat, p.anomaly_map, 0.3)


def test_a_fine_tuned_version_keeps_its_parents_rules(tiny_bundle, parts_dir):
    """A retrain fine-tunes from the version in use: the candidate must judge by the same rules."""
    import copy

    from inspector.data.images import list_images
    from inspector.engine.trainer import TrainConfig, Trainer

    parent = ModelBundle(copy.deepcopy(tiny_bundle.model), copy.deepcopy(tiny_bundle.info))
    parent.info.rules = RegionRules(ng_above_area=50)
    config = TrainConfig(**{**tiny_bundle.info.training["config"], "epochs": 1, "device": "cpu"})
    child = Trainer(config).fit(list_images(parts_dir)[:12], init_from=parent)
    assert child.info.rules == parent.info.rules


# --- the CLI ---------------------------------------------------------------------------------------
def test_cli_models_rules_then_predict_shows_the_new_decision(tiny_bundle, tmp_home, tmp_path, capsys):
    from inspector.cli import main

    ModelRegistry().add(tiny_bundle, "parts")
    image = make_part(np.random.default_rng(2))
    image[10:26, 10:26] = 255
    cv2.imwrite(str(tmp_path / "part.png"), image)
    assert main(["predict", "parts", str(tmp_path / "part.png"), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)["results"][0]
    assert before["decision"] == NG and before["rule"] == "score above threshold"  # a clear defect

    # every region tolerated: the same part is now OK
    assert main(["models", "rules", "parts", "--level", "0.05", "--ok-below-area", "1e9"]) == 0
    assert "saved parts@v2 with region rules" in capsys.readouterr().out
    csv_path = tmp_path / "out.csv"
    assert main(["predict", "parts", str(tmp_path / "part.png"), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "region(s), largest" in out and " px" in out
    header, row = csv.reader(csv_path.read_text().splitlines())
    assert header == ["path", "score", "threshold", "decision", "error", "regions", "largest_area", "area_unit", "rule"]  # new at the end
    assert row[3] == OK and int(row[5]) >= 1 and row[7] == "px" and "tolerated" in row[8]

    assert main(["models", "show", "parts"]) == 0
    assert "region rules: regions at heat ≥ 0.05; OK when every region < 1e+09 px" in capsys.readouterr().out
    assert main(["models", "show", "parts", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rules"]["ok_below_area"] == 1e9 and shown["format_version"] == 2

    # bad numbers: one line, exit 2, nothing saved
    for argv in (["--level", "0"], ["--level", "1.5"], ["--pixel-size-mm", "-1"], ["--max-regions", "x"], ["--ng-above-area", "nan"]):
        assert main(["models", "rules", "parts", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err
    assert main(["models", "rules", "parts", "--ng-above-area", "10"]) == 2  # below ok_below_area: refused in one line
    assert "must not be above ng_above_area" in capsys.readouterr().err
    assert main(["models", "rules", "parts"]) == 2
    assert main(["models", "rules", "parts", "--pixel-size-mm", "0.1"]) == 2  # the kept areas are in px
    assert "give them again in mm²" in capsys.readouterr().err
    assert [e.version for e in ModelRegistry().versions("parts")] == [1, 2]
    assert main(["models", "rules", "parts", "--clear"]) == 0
    assert ModelRegistry().latest("parts").info.rules is None


# --- the results store -----------------------------------------------------------------------------
def test_the_results_store_keeps_regions_and_the_rule(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    regions = find_regions(*(2 * [_heat(boxes=[(10, 10, 5, 5), (30, 30, 2, 2)])]), DEFAULT_LEVEL)
    row_id = store.record(source="s", frame_id=1, model="m", model_version=2, score=2.0, threshold=1.0,
                          decision=OK, regions=regions, rule="score above threshold, but every region < 50 px: tolerated")
    row = store.get(row_id)
    assert row.decision == OK and row.region_list() == regions and "tolerated" in row.rule
    old_style = store.get(store.record(source="s", frame_id=2, model="m", model_version=2, score=0.1, threshold=1.0, decision=OK))
    assert old_style.regions is None and old_style.rule is None
    out = tmp_path / "r.csv"
    store.export_csv(out)
    lines = list(csv.reader(out.read_text().splitlines()))
    assert lines[0][-4:] == ["error", "regions", "largest_area_px", "rule"] and lines[1][-3:-1] == ["2", "25"]
    assert lines[2][-3:] == ["", "", ""]
    store.close()


def test_a_schema_2_database_migrates_to_3_keeping_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE inspections (
            id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, source TEXT NOT NULL, frame_id INTEGER NOT NULL,
            frame_name TEXT NOT NULL DEFAULT '', model TEXT NOT NULL, model_version INTEGER NOT NULL,
            score REAL, threshold REAL, decision TEXT NOT NULL CHECK (decision IN ('OK', 'NG')),
            feedback TEXT CHECK (feedback IS NULL OR feedback IN ('false_alarm', 'confirmed')), feedback_time REAL,
            image TEXT, roi TEXT NOT NULL DEFAULT '', latency_ms REAL, error TEXT);
        INSERT INTO inspections (time, source, frame_id, model, model_version, score, threshold, decision, error)
            VALUES (1700000000, 'camera 0', 7, 'line', 3, 0.5, 0.4, 'NG', NULL);
        PRAGMA user_version = 2;
    """)
    con.close()
    readonly = ResultsStore(db, readonly=True)  # an old database reads as it is, without the new columns
    assert readonly.get(1).regions is None and readonly.get(1).rule is None
    readonly.close()
    store = ResultsStore(db)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    old = store.get(1)
    assert (old.frame_id, old.model_ref, old.score, old.decision, old.regions) == (7, "line@v3", 0.5, "NG", None)
    new = store.get(store.record(source="s", frame_id=8, model="line", model_version=3, score=0.1, threshold=0.4,
                                 decision=OK, regions=[], rule="score within threshold"))
    assert new.id == 2 and new.regions == [] and new.rule == "score within threshold"
    assert store.integrity_check() == "ok"
    store.close()
    assert ResultsStore(db).count() == {"OK": 1, "NG": 1, "total": 2}


def test_live_results_store_their_regions_and_the_decision_with_rules(tiny_bundle, tmp_path):
    from inspector.data.sources import open_source
    from inspector.engine.live import LiveInspector

    folder = tmp_path / "frames"
    folder.mkdir()
    image = make_part(np.random.default_rng(3))
    image[10:26, 10:26] = 255
    cv2.imwrite(str(folder / "a.png"), image)
    info = ModelInfo.from_dict(tiny_bundle.info.to_dict())
    info.rules = RegionRules(level=0.05, ok_below_area=1e9)
    predictor = Predictor(ModelBundle(tiny_bundle.model, info), "cpu")
    expected = predictor.predict(image)
    assert expected.score > expected.threshold and expected.decision == OK  # tolerated by the rule
    store = ResultsStore(tmp_path / "live.sqlite")
    results = []
    LiveInspector(open_source(f"sim:{folder}", fps=40), predictor, store, on_result=results.append, max_frames=1).run()
    assert [r.decision for r in results] == [OK]
    row = store.query()[0]
    assert row.decision == OK and "tolerated" in row.rule and row.region_list() == expected.regions
    store.close()


# --- the app ---------------------------------------------------------------------------------------
def test_evaluate_page_saves_rules_as_a_new_version_and_the_prediction_view_outlines_regions(qtbot, tiny_bundle, tmp_home):
    from PySide6.QtCore import Qt

    from inspector.gui.pages.evaluate_page import EvaluatePage
    from inspector.gui.session import Session
    from inspector.gui.widgets.prediction_view import PredictionView

    ModelRegistry().add(tiny_bundle, "parts")
    session = Session()
    session.set_predictor(Predictor.open("parts", device="cpu"))
    page = EvaluatePage(session)
    qtbot.addWidget(page)
    form = page.rules_form
    assert not form.box.isChecked()  # the model has no rules
    form.box.setChecked(True)
    form.level.setValue(0.3)
    form.ng_above.setValue(10.0)
    form.ok_below.setValue(50.0)  # above ng_above: refused in words, nothing saved
    qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    assert "Not saved" in form.message.text() and len(ModelRegistry().versions("parts")) == 1
    form.ok_below.setValue(4.0)
    form.max_regions.setValue(5)
    with qtbot.waitSignal(page.rulesSaved, timeout=5000) as saved:
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    expected = RegionRules(level=0.3, ok_below_area=4.0, ng_above_area=10.0, max_regions=5)
    assert saved.args[0].version == 2 and saved.args[0].info.parent == "parts@v1"
    assert ModelRegistry().latest("parts").info.rules == expected and session.rules == expected
    assert form.box.isChecked() and form.level.value() == 0.3  # the form shows the model's rules

    view = PredictionView()
    qtbot.addWidget(view)
    image = make_part(np.random.default_rng(4))
    image[10:26, 10:26] = 255
    prediction = session.predictor.predict(image)
    view.set_prediction(prediction, session.threshold)
    boxes = view.original.view.outlines()
    assert boxes and boxes == [r.bbox for r in prediction.regions] == view.overlay.view.outlines()
    assert view.badge.decision == prediction.decision and prediction.reason in view.score.text()
    view.grab()  # paints with the outlines without error
    view.show_regions.setChecked(False)
    assert view.original.view.outlines() == []

    form.box.setChecked(False)  # unchecked: a version without rules
    with qtbot.waitSignal(page.rulesSaved, timeout=5000):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    assert ModelRegistry().latest("parts").info.rules is None and session.rules is None
