import numpy as np
import pytest

from inspector.engine import metrics
from inspector.engine.threshold import (
    SYNTHETIC_DEFECTS_MIN,
    TRAINING_MODES,
    Threshold,
    ThresholdMode,
    calibrate,
    from_good_scores,
    synthetic_defects,
    with_defects,
)


def test_auroc_known_values():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.auroc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert metrics.auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert metrics.auroc([0, 0, 1], [0.1, 0.4, 0.3]) == 0.5
    assert np.isnan(metrics.auroc([0, 0], [0.1, 0.2]))


def test_roc_curve_ends_and_matches_auroc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    fpr, tpr, _ = metrics.roc_curve(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.auroc(y, s), abs=1e-9)


def test_best_f1_threshold_separates_perfectly():
    f1, thr = metrics.best_f1([0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.9])
    assert f1 == 1.0 and 0.3 < thr < 0.7


def test_confusion_and_detection_metrics():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    m = metrics.detection_metrics(y, s, threshold=0.5)
    assert m.confusion == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.false_alarm_rate == pytest.approx(1 / 3)
    assert m.n_good == 3 and m.n_defect == 3


def test_false_alarm_at_recall():
    y = np.r_[np.zeros(10), np.ones(10)]
    s = np.r_[np.arange(10), np.arange(5, 15)]  # defects 5..14, good 0..9
    # catching 90 % of defects needs threshold 6 → good 6..9 flagged = 40 %
    assert metrics.false_alarm_at_recall(y, s, 0.9) == pytest.approx(0.4)


def test_pixel_auroc_rewards_maps_that_peak_in_the_mask():
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    good_map = mask.astype(np.float32) / 255 + np.random.default_rng(0).normal(0, 0.1, mask.shape)
    assert metrics.pixel_auroc([mask], [good_map]) > 0.95
    assert metrics.pixel_auroc([mask], [-good_map]) < 0.05


def test_threshold_from_good_scores_is_the_quantile():
    good = np.arange(100, dtype=float)
    t = from_good_scores(good, false_alarm_rate=0.05)
    assert t.method == ThresholdMode.GOOD_QUANTILE
    assert np.mean(good > t.value) == pytest.approx(0.05, abs=0.011)
    with pytest.raises(ValueError):
        from_good_scores([])


def test_threshold_with_defects_respects_false_alarm_cap():
    good = np.linspace(0, 1, 100)
    bad = np.linspace(0.5, 1.5, 100)  # overlaps half of the good range
    t = with_defects(good, bad, ThresholdMode.SYNTHETIC_F1, max_false_alarm_rate=0.05)
    assert np.mean(good > t.value) <= 0.05 + 1e-9
    assert t.stats["detection_rate"] > 0.4
    easy = with_defects(good, bad + 10, ThresholdMode.LABELLED_F1)
    assert easy.stats["false_alarm_rate"] == 0 and easy.stats["detection_rate"] == 1


def test_threshold_modes_are_the_strings_model_files_store():
    assert [m.value for m in ThresholdMode] == ["good-quantile", "synthetic-f1", "labelled-f1", "manual"]
    assert TRAINING_MODES == (ThresholdMode.GOOD_QUANTILE, ThresholdMode.SYNTHETIC_F1)
    stored = Threshold.from_dict({"value": 0.5, "method": "synthetic-f1"})
    assert stored.method == ThresholdMode.SYNTHETIC_F1 and ThresholdMode(stored.method) is ThresholdMode.SYNTHETIC_F1
    assert f"{ThresholdMode.MANUAL}" == "manual"  # in messages and f-strings, the stored text
    t = calibrate("good-quantile", np.arange(10.0), 0.1)
    assert type(t.method) is str and t.to_dict()["method"] == "good-quantile"


def test_calibrate_chooses_by_mode_as_the_functions_it_stands_for():
    rng = np.random.default_rng(3)
    good, bad = rng.normal(0, 1, 200), rng.normal(3, 1, 64)
    assert calibrate(ThresholdMode.GOOD_QUANTILE, good, 0.02) == from_good_scores(good, 0.02)
    assert calibrate("synthetic-f1", good, 0.05, bad) == with_defects(good, bad, "synthetic-f1", 0.05)
    labelled = calibrate(ThresholdMode.LABELLED_F1, good, 0.05, bad)
    assert labelled.method == "labelled-f1" and labelled.value == with_defects(good, bad, "labelled-f1", 0.05).value
    with pytest.raises(ValueError, match="needs defect scores"):
        calibrate(ThresholdMode.SYNTHETIC_F1, good, 0.05)
    with pytest.raises(ValueError, match="set by hand"):
        calibrate(ThresholdMode.MANUAL, good, 0.05)
    with pytest.raises(ValueError, match="unknown threshold mode 'median'"):
        calibrate("median", good, 0.05)


def test_synthetic_defect_set_has_one_per_good_image_and_at_least_the_minimum():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32), dtype=np.uint8) for _ in range(40)]
    assert len(synthetic_defects(images[:5], seed=1)) == SYNTHETIC_DEFECTS_MIN
    assert len(synthetic_defects(images, seed=1)) == 40
    first, again = synthetic_defects(images[:5], seed=1), synthetic_defects(images[:5], seed=1)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
