"""EMA smoothing of probability rows: known answers, NaN handling, flicker reduction."""
import numpy as np
import pytest

from fer_hybrid.inference.smoothing import ProbabilityEMA, ema


def test_known_answer_two_classes():
    seq = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    out = ema(seq, alpha=0.5)
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.5, 0.5], [0.25, 0.75]])
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_alpha_one_is_identity():
    rng = np.random.default_rng(0)
    seq = rng.dirichlet(np.ones(5), size=20)
    np.testing.assert_allclose(ema(seq, alpha=1.0), seq)


def test_smoothing_reduces_label_flicker():
    # a face that is "happy" (col 2) with every third frame a noisy "sad" (col 3) spike
    base = np.array([0.05, 0.05, 0.6, 0.25, 0.05])
    spike = np.array([0.05, 0.05, 0.3, 0.55, 0.05])
    seq = np.array([spike if t % 3 == 2 else base for t in range(30)])
    raw_labels = seq.argmax(axis=1)
    smooth_labels = ema(seq, alpha=0.4).argmax(axis=1)
    assert (raw_labels != 2).sum() == 10
    assert (smooth_labels == 2).all()


def test_nan_rows_give_nan_and_keep_state():
    s = ProbabilityEMA(alpha=0.5)
    np.testing.assert_allclose(s.update([1.0, 0.0]), [1.0, 0.0])
    assert np.isnan(s.update([np.nan, np.nan])).all()
    np.testing.assert_allclose(s.state, [1.0, 0.0])  # untouched by the NaN row
    np.testing.assert_allclose(s.update([0.0, 1.0]), [0.5, 0.5])


def test_nan_before_any_valid_row():
    out = ema(np.array([[np.nan, np.nan], [0.2, 0.8]]), alpha=0.3)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], [0.2, 0.8])  # first valid row initialises the state


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        ProbabilityEMA(alpha)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"\(t, k\)"):
        ema(np.zeros(5))
