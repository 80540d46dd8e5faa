"""Metrics equal hand-computed values; abstentions (NaN rows) count as wrong."""
import math

import numpy as np
import pytest

from fer_hybrid import evaluate as ev

CLASSES = ("a", "b", "c")
Y_TRUE = np.array([0, 0, 1, 1, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, ev.ABSTAIN])  # one mistake, one abstention


def test_classification_metrics_by_hand():
    m = ev.classification_metrics(Y_TRUE, Y_PRED, CLASSES)
    assert m["n"] == 6 and m["n_abstained"] == 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3;  b: tp 2, fp 1, fn 0 -> P 2/3, R 1, F1 4/5
    # c: tp 1, fp 0, fn 1 (the abstention) -> P 1, R 1/2, F1 2/3
    pc = m["per_class"]
    assert (pc["a"]["precision"], pc["a"]["recall"], pc["a"]["f1"]) == pytest.approx((1, 0.5, 2 / 3))
    assert (pc["b"]["precision"], pc["b"]["recall"], pc["b"]["f1"]) == pytest.approx((2 / 3, 1, 0.8))
    assert (pc["c"]["precision"], pc["c"]["recall"], pc["c"]["f1"]) == pytest.approx((1, 0.5, 2 / 3))
    assert [pc[c]["support"] for c in CLASSES] == [2, 2, 2]
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    # rows true, columns predicted; the abstained row is not in the matrix
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]


def test_nan_row_is_an_abstention_counted_wrong():
    proba = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.7, 0.2], [0.0, 1.0, 0.0],
                      [0.1, 0.1, 0.8], [np.nan] * 3])
    assert ev.predictions_from_proba(proba).tolist() == Y_PRED.tolist()
    assert ev.metrics_from_proba(Y_TRUE, proba, CLASSES) == ev.classification_metrics(Y_TRUE, Y_PRED, CLASSES)
    all_nan = ev.metrics_from_proba(np.array([0, 1]), np.full((2, 3), np.nan), CLASSES)
    assert all_nan["accuracy"] == 0.0 and all_nan["n_abstained"] == 2
    assert all_nan["confusion_matrix"] == [[0] * 3] * 3


def test_shape_mismatch_and_empty():
    with pytest.raises(ValueError, match="differ in shape"):
        ev.classification_metrics(np.array([0, 1]), np.array([0]), CLASSES)
    m = ev.classification_metrics(np.array([], int), np.array([], int), CLASSES)
    assert m["n"] == 0 and math.isnan(m["accuracy"])


def test_accuracy_delta():
    assert ev.accuracy_delta({"train": {"accuracy": 0.9}, "val": {"accuracy": 0.65}}) == pytest.approx(0.25)
    assert ev.accuracy_delta({"train": {"accuracy": 0.9}}) is None
    assert ev.accuracy_delta({"train": None, "val": {"accuracy": 0.5}}) is None


def test_evaluate_predictor_on_fixture(sample_data):
    k = len(sample_data.classes)

    def oracle(x):  # "predicts" class 0 for every face
        p = np.zeros((len(x), k))
        p[:, 0] = 1
        return p

    out = ev.evaluate_predictor(oracle, sample_data, batch_size=4)
    assert set(out) == {"train", "val", "test"}
    assert out["test"]["n"] == 10 and out["test"]["accuracy"] == pytest.approx(2 / 10)
    assert out["train"]["confusion_matrix"][0] == [5, 0, 0, 0, 0]


def test_ms_per_face_and_sha256(tmp_path):
    calls = []
    ms = ev.ms_per_face(calls.append, np.zeros((48, 48), np.uint8), repeats=7, warmup=2)
    assert len(calls) == 9 and 0 <= ms < 50
    (tmp_path / "f").write_bytes(b"abc")
    assert ev.file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
