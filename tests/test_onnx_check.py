"""fer_hybrid.evaluation.onnx_check: the choice of Keras CNN, agreement, alternating timing, report fields."""
from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.evaluation import onnx_check as O

MANIFEST = {"a": {"loader": "keras", "file": "a.keras", "sha256": "1", "metrics": {"val": {"accuracy": 0.7}}},
            "b": {"loader": "keras", "file": "b.keras", "sha256": "2", "metrics": {"val": {"accuracy": 0.7}}},
            "c": {"loader": "keras", "file": "c.keras", "sha256": "3", "metrics": {"val": {"accuracy": 0.6}}},
            "unshipped": {"loader": "keras", "file": "u.keras", "metrics": {"val": {"accuracy": 0.9}}},
            "a-onnx": {"loader": "onnx", "file": "a.onnx", "sha256": "4", "metrics": {"val": {"accuracy": 0.8}}}}


def test_shipped_keras_cnns_and_the_choice_on_val():
    cnns = O.shipped_keras_cnns(MANIFEST)
    assert sorted(cnns) == ["a", "b", "c"]
    assert O.choose_keras_cnn(cnns) == "a"            # a and b tie on val: the first by name
    assert O.choose_keras_cnn(cnns, "c") == "c"
    with pytest.raises(ValueError, match="'a-onnx' is not a shipped Keras CNN; choose one of a, b, c"):
        O.choose_keras_cnn(cnns, "a-onnx")
    with pytest.raises(ValueError, match="'best-val' is not a shipped Keras CNN"):
        O.choose_keras_cnn({})


def proba(x):
    m = x.reshape(len(x), -1).mean(1) / 255.0
    return np.stack([m, 1 - m], 1)


def test_chunked_and_max_abs_diff():
    x = np.random.default_rng(0).integers(0, 256, (7, 4, 4), dtype=np.uint8)
    calls = []
    got = O.chunked(lambda b: calls.append(len(b)) or proba(b), x, 3)
    np.testing.assert_allclose(got, proba(x))
    assert calls == [3, 3, 1]
    assert O.chunked(lambda b: calls.append(len(b)) or proba(b), x, None).shape == (7, 2) and calls[-1] == 7
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        O.chunked(proba, x, 0)
    assert O.max_abs_diff(np.array([[0.2, 0.8]]), np.array([[0.25, 0.75]])) == pytest.approx(0.05)
    assert O.max_abs_diff(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0
    with pytest.raises(ValueError, match=r"shapes \(1, 2\) and \(2, 2\)"):
        O.max_abs_diff(np.zeros((1, 2)), np.zeros((2, 2)))


def test_agreement_per_split_with_the_reference_accuracy():
    rng = np.random.default_rng(1)
    splits = {s: types.SimpleNamespace(x=rng.integers(0, 256, (5, 4, 4), dtype=np.uint8), y=np.zeros(5, int))
              for s in ("val", "test")}
    data = types.SimpleNamespace(split=splits.__getitem__, classes=("a", "b"))
    nudged = lambda x: proba(x) + np.array([0.0, 1e-3])  # noqa: E731
    diffs, acc = O.agreement(proba, nudged, data, batch_size=2)
    assert diffs == pytest.approx({"val": 1e-3, "test": 1e-3})
    for s in ("val", "test"):
        assert acc[s] == pytest.approx((proba(splits[s].x).argmax(1) == 0).mean())


def test_alternating_ms_interleaves_blocks():
    order = []
    times, ms = O.alternating_ms({"keras": lambda f: order.append("k"), "onnx": lambda f: order.append("o")},
                                 np.zeros((1, 48, 48), np.uint8), repeats=3, calls=2)
    assert order == (["k"] * 7 + ["o"] * 7) * 3          # 5 warm-up + 2 timed calls per block, blocks alternate
    assert [len(v) for v in times.values()] == [3, 3]
    assert ms == {k: pytest.approx(float(np.median(v))) for k, v in times.items()}
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        O.alternating_ms({}, None, repeats=0)


def test_onnx_fields_agreement_and_speed_verdicts():
    f = O.onnx_fields({"val": 2e-5, "test": 5e-5}, {"keras": 3.0, "onnx": 1.0}, {"keras": [3.0], "onnx": [1.0]},
                      {"val": 0.7, "test": 0.71}, threads=1, load=0.5)
    assert f["agrees"] is True and f["faster"] is True and f["agrees_within"] == O.MAX_DIFF
    assert (f["ms_per_face"], f["keras_ms_per_face"]) == (1.0, 3.0)
    f = O.onnx_fields({"val": 2e-4}, {"keras": 1.0, "onnx": 1.0}, {}, {}, threads=2, load=0.0)
    assert f["agrees"] is False and f["faster"] is False


def test_export_and_check_tiny_model(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from fer_hybrid.predictors import KerasPredictor, load_keras_model

    model = load_keras_model(Path(__file__).parent / "data" / "tiny_cnn.keras")
    keras = KerasPredictor(model, "tiny")
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    info = O.export_and_check(model, tmp_path / "tiny.onnx", keras.predict_proba, faces, faces[:1], 9.0, "tiny",
                              tmp_path)
    assert info["file"] == "tiny.onnx" and (tmp_path / "tiny.onnx").is_file() and len(info["sha256"]) == 64
    assert 0 <= info["max_abs_diff_vs_keras_val"] < 1e-4
    assert info["keras_ms_per_face"] == 9.0 and info["ms_per_face"] > 0


def test_a_model_becomes_the_default_only_when_it_beats_it_on_val():
    manifest = {"default": "d", "models": {"d": {"metrics": {"val": {"accuracy": 0.74}}}}}
    assert O.beats_default(manifest, 0.75)[0] is True
    better, why = O.beats_default(manifest, 0.74)
    assert better is False and "does not beat the default d (0.7400)" in why
    assert O.beats_default({"default": "x", "models": {"x": {}}}, 0.1)[0] is True


def _inframe(score, variant="level", n=500, conditions=("default", "rot+20")):
    return {"selected_on": "val", "chosen_variant": variant, "selection_score": {variant: score},
            "n_per_split": n, "seed": 0, "conditions": [{"name": c} for c in conditions]}


def test_a_crop_gain_lost_in_the_frame_does_not_change_the_default():
    manifest = {"default": "d", "models": {"d": {"metrics": {"val": {"accuracy": 0.7447}}}}}
    default = _inframe(0.6907)
    better, why = O.beats_default(manifest, 0.7468, _inframe(0.6886), default)          # today's vggbn-soup2
    assert better is False and "in the frame its val mean 0.6886 is below the default's 0.6907" in why
    better, why = O.beats_default(manifest, 0.7468, _inframe(0.6907), default)          # a tie in the frame
    assert better is True and "0.6907 vs 0.6907 (level crop)" in why
    # No comparable in-frame run of the candidate: refused, with the command to run
    for candidate in (None, _inframe(0.70, n=100), _inframe(0.70, conditions=("default",)),
                      _inframe(0.70, variant="box"), {**_inframe(0.70), "selected_on": "test"}):
        better, why = O.beats_default(manifest, 0.7468, candidate, default)
        assert better is False and "--variants level --splits val" in why
    # The crop rule still comes first; a default without an in-frame report keeps the crop rule alone
    assert O.beats_default(manifest, 0.7400, _inframe(0.80), default)[0] is False
    assert O.beats_default(manifest, 0.7468, None, None) == (True, "val 0.7468 beats the default d (0.7447)")


def test_in_frame_reports_are_found_by_model_name(tmp_path):
    from fer_hybrid import reports
    from fer_hybrid.evaluation import inframe_report as R

    assert R.find_report(tmp_path, "m") is None
    metrics = {s: {"accuracy": 0.5, "macro_f1": 0.5, "n": 10} for s in ("train", "val", "test")}
    reports.write_report(reports.make_report(name="inframe-m", kind="cnn", weights="m (shipped)", metrics=metrics,
                                             benchmark="inframe", **_inframe(0.6)), tmp_path / "inframe-m")
    report = R.find_report(tmp_path, "m")
    assert R.val_score(report) == 0.6 and R.val_score(report, "eyes") is None and R.val_score(None) is None
    assert R.same_benchmark(report, _inframe(0.1)) and not R.same_benchmark(report, _inframe(0.1, n=0))


def test_choice_note_says_chosen_on_val_only_for_best_val():
    cnns = O.shipped_keras_cnns(MANIFEST)
    assert O.choice_note("a", "best-val", cnns) == "a chosen on val among the shipped Keras CNNs (a, b, c)"
    assert O.choice_note("c", "c", cnns) == "c named by --model"
