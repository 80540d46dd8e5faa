"""Calibration: ECE known answers, temperature scaling round trips, fitting recovers a known temperature."""
from __future__ import annotations

import numpy as np
import pytest

from fer_hybrid.evaluation import calibration as cal
from fer_hybrid.inference.temperature import scale_proba

CLASSES = ("angry", "fear", "happy", "sad", "surprise")


def test_ece_known_answer():
    # two bins used: 0.9-confidence rows right 3 of 4 times (gap 0.15), 0.5-confidence rows right 1 of 2 (gap 0)
    p9, p5 = [0.9, 0.1, 0, 0, 0], [0.5, 0.5, 0, 0, 0]
    proba = np.array([p9] * 4 + [p5] * 2)
    y = np.array([0, 0, 0, 1, 0, 1])
    assert cal.ece(proba, y) == pytest.approx(4 / 6 * 0.15)
    r = cal.reliability(proba, y)
    assert sum(r["count"]) == 6 and len(r["edges"]) == cal.N_BINS + 1


def test_perfectly_confident_and_right_has_zero_ece_and_nan_rows_are_left_out():
    proba = np.vstack([np.eye(5), np.full((1, 5), np.nan)])
    y = np.array([0, 1, 2, 3, 4, 0])
    assert cal.ece(proba, y) == pytest.approx(0.0)
    assert cal.summary(proba, y, CLASSES)["n"] == 5


def test_scale_proba_identity_sharpen_soften_and_nan():
    p = np.array([[0.7, 0.2, 0.05, 0.03, 0.02], [np.nan] * 5])
    np.testing.assert_allclose(scale_proba(p, 1.0)[0], p[0], atol=1e-12)
    soft, sharp = scale_proba(p, 2.0)[0], scale_proba(p, 0.5)[0]
    assert soft.max() < 0.7 < sharp.max()
    assert soft.argmax() == sharp.argmax() == 0 and soft.sum() == pytest.approx(1.0)
    assert np.isnan(scale_proba(p, 2.0)[1]).all()
    with pytest.raises(ValueError, match="temperature"):
        scale_proba(p, 0.0)
    with pytest.raises(ValueError, match="bias"):
        scale_proba(p, 1.0, np.zeros(3))


def test_fit_temperature_recovers_the_temperature_that_made_the_data_overconfident():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (4000, 5))
    calibrated = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in calibrated])
    overconfident = scale_proba(calibrated, 1 / 1.5)      # the model's logits are 1.5x too large
    fit = cal.fit_temperature(overconfident, y)
    assert fit.temperature == pytest.approx(1.5, rel=0.08)
    assert cal.ece(fit.apply(overconfident), y) < cal.ece(overconfident, y)
    both = cal.fit_temperature_bias(overconfident, y)
    assert len(both.bias) == 5 and both.bias[0] == 0.0


def test_class_bias_counts_over_prediction():
    proba = np.array([[0, 0, 0, 1, 0]] * 3 + [[1, 0, 0, 0, 0]], dtype=float)
    y = np.array([0, 3, 3, 0])
    b = cal.class_bias(proba, y, CLASSES)
    assert b["sad"] == {"true": 2, "predicted": 3, "over_predicted": 1.5, "mean_probability": 0.75,
                        "frequency": 0.5}
    assert b["fear"]["over_predicted"] is None


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="do not match"):
        cal.ece(np.ones((3, 5)) / 5, np.zeros(2))
