"""The method of experiments/calibration.py in fer_hybrid.evaluation.calibration: cross-validated ECE, fitting
and measuring on val and test, the choice on val, the keep rule on test, report metrics, notes and tables."""
from __future__ import annotations

import numpy as np
import pytest

from fer_hybrid.evaluation import calibration as cal
from fer_hybrid.inference.temperature import scale_proba

CLASSES = ("angry", "fear", "happy", "sad", "surprise")


@pytest.fixture(scope="module")
def overconfident():
    """{split: proba}, {split: y}: labels drawn from calibrated probabilities, logits then made 1.5x too large."""
    rng = np.random.default_rng(1)
    proba, y = {}, {}
    for split, n in (("val", 2000), ("test", 1500)):
        logits = rng.normal(0, 2.0, (n, 5))
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        y[split] = np.array([rng.choice(5, p=row) for row in p])
        proba[split] = scale_proba(p, 1 / 1.5)
    return proba, y


@pytest.fixture(scope="module")
def compared(overconfident):
    return cal.compare_calibrations(*overconfident, CLASSES)


def comparison(bias_val_acc=0.69, temperature_test_ece=0.02, temperature_cv=0.04):
    s = {"accuracy": 0.7, "ece": 0.05}
    return cal.Comparison(
        before={"val": s, "test": {"ece": 0.06}},
        after={"temperature": {"val": {"accuracy": 0.7}, "test": {"ece": temperature_test_ece}},
               "temperature+bias": {"val": {"accuracy": bias_val_acc}, "test": {"ece": 0.01}}},
        fitted={"temperature": cal.Calibration(1.4), "temperature+bias": cal.Calibration(1.2, [0.0, 0.3, 0, 0, 0])},
        cv={"temperature": temperature_cv, "temperature+bias": 0.03, cal.AS_SHIPPED: 0.06})


def test_cross_validated_ece_known_answer_and_fits_on_the_other_folds():
    proba = np.tile([0.9, 0.1, 0, 0, 0], (10, 1))
    y = np.zeros(10, int)                          # always right at confidence 0.9: ECE 0.1 in every fold
    seen = []

    def identity(p, t):
        seen.append(len(t))
        return cal.Calibration()

    assert cal.cross_validated_ece(proba, y, identity) == pytest.approx(0.1)
    assert seen == [8] * cal.FOLDS
    sharpen = cal.cross_validated_ece(proba, y, lambda p, t: cal.Calibration(0.2))   # more confident: closer to 1
    assert sharpen < 0.01


def test_compare_calibrations_fits_on_val_and_measures_every_split(overconfident, compared):
    proba, y = overconfident
    c = compared
    assert set(c.fitted) == set(c.after) == {"temperature", "temperature+bias"}
    assert set(c.cv) == {"temperature", "temperature+bias", cal.AS_SHIPPED}
    assert c.fitted["temperature"].temperature == pytest.approx(1.5, rel=0.1)
    assert c.fitted["temperature"].temperature == cal.fit_temperature(proba["val"], y["val"]).temperature
    for split in ("val", "test"):
        assert c.before[split]["n"] == len(y[split])
        assert c.after["temperature"][split]["ece"] < c.before[split]["ece"]
        assert c.after["temperature"][split]["accuracy"] == c.before[split]["accuracy"]   # T keeps the labels
    assert c.cv["temperature"] < c.cv[cal.AS_SHIPPED]
    with pytest.raises(ValueError, match="fitted on val"):
        cal.compare_calibrations({"test": proba["test"]}, {"test": y["test"]}, CLASSES)


def test_eligible_and_choice_on_val():
    assert cal.eligible(comparison(bias_val_acc=0.69)) == ["temperature"]           # the bias lowered val accuracy
    both = comparison(bias_val_acc=0.71)
    assert cal.eligible(both) == ["temperature", "temperature+bias"]
    assert cal.choose_on_val(both, cal.eligible(both)) == "temperature+bias"         # lower cross-validated ECE
    assert cal.eligible(both, keep_labels=True) == ["temperature"]
    with pytest.raises(ValueError, match="no calibration is eligible"):
        cal.choose_on_val(both, [])


def test_the_chosen_calibration_is_kept_only_if_it_lowers_ece_inside_val_never_by_test():
    keep, final = cal.kept_calibration(comparison(), "temperature")
    assert keep is True and final.temperature == 1.4
    keep, _ = cal.kept_calibration(comparison(temperature_test_ece=0.07), "temperature")
    assert keep is True                                   # a worse test ECE does not change the decision
    keep, final = cal.kept_calibration(comparison(temperature_cv=0.06), "temperature")
    assert keep is False and final == cal.Calibration() and final.to_json() == {"temperature": 1.0, "bias": None}


def test_verdict_and_notes():
    c = comparison()
    assert cal.verdict(c, "temperature", True, c.fitted["temperature"]) == \
        "kept temperature (T=1.4000): cross-validated val ECE 0.0600 -> 0.0400, test ECE 0.0600 -> 0.0200"
    assert cal.verdict(c, "temperature+bias", False, cal.Calibration()) == \
        ("temperature+bias was chosen on val but did not lower the cross-validated val ECE (0.0600 -> 0.0300); "
         "not kept (test ECE would have gone 0.0600 -> 0.0100)")
    notes = cal.report_notes("m", "flip", ["temperature", "temperature+bias"], "kept x")
    assert "(test-time augmentation 'flip')" in notes and "5-fold ECE" in notes
    assert "keep val accuracy (temperature, temperature+bias); kept x. metrics.*" in notes


def test_calibrated_metrics_of_the_kept_calibration(overconfident):
    proba, y = overconfident
    before = {s: cal.summary(proba[s], y[s], CLASSES) for s in proba}
    same = cal.calibrated_metrics(proba, y, cal.Calibration(), before, CLASSES)
    assert same["train"] == {"accuracy": None}
    assert same["test"]["ece"] == same["test"]["ece_before"] and same["val"]["nll"] == same["val"]["nll_before"]
    scaled = cal.calibrated_metrics(proba, y, cal.Calibration(1.5), before, CLASSES)
    assert scaled["test"]["nll"] < scaled["test"]["nll_before"]
    assert scaled["test"]["accuracy"] == same["test"]["accuracy"] == before["test"]["accuracy"]
    assert scaled["val"]["n"] == len(y["val"])


def test_markdown_tables_and_reliability_figures(compared, tmp_path):
    c = compared
    md = cal.markdown_tables("m", c, "temperature+bias", True, cal.Calibration(1.5, [0.0, 0.12346, 0, 0, 0]), CLASSES)
    b = c.before
    assert (f"| m as shipped | {b['val']['accuracy']:.4f} | {b['val']['ece']:.4f} | {b['val']['nll']:.4f} | "
            f"{b['test']['accuracy']:.4f} | {b['test']['ece']:.4f} | {b['test']['nll']:.4f} | "
            f"{c.cv[cal.AS_SHIPPED]:.4f} |") in md
    assert md.count("(fitted on val) |") == 2
    assert "Chosen on val: **temperature+bias**; kept: **True** (temperature 1.5000, bias [0.0, 0.1235, 0, 0, 0])." in md
    v = b["val"]["bias"]["sad"]
    assert f"| sad | {v['true']} | {v['predicted']} | {v['over_predicted']:.3f} |" in md
    paths = cal.save_reliability_pngs(c, tmp_path, "m")
    assert [p.name for p in paths] == ["reliability_val.png", "reliability_test.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
