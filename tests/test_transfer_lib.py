"""The CNN track's library steps: teacher cache key and targets (fer_hybrid.cnn.distill), shipping a model
(fer_hybrid.cnn.train.ship_model), FER+ targets, evaluation of what ships and the report
(fer_hybrid.evaluation.transfer_report)."""
from __future__ import annotations

import gzip
import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

from fer_hybrid.cnn.distill import teacher_key, teacher_targets  # noqa: E402
from fer_hybrid.cnn.train import TrainConfig, ship_model  # noqa: E402
from fer_hybrid.evaluation import transfer_report as T  # noqa: E402

DATA = Path(__file__).parent / "data"


def test_teacher_key_of_an_ensemble_is_its_files_weights_and_tta(tmp_path):
    files = [tmp_path / "a.keras", tmp_path / "b.keras"]
    files[0].write_bytes(b"first")
    files[1].write_bytes(b"second")
    cnn = types.SimpleNamespace(files=files, weights=[0.3333333333, 2], tta="flip")
    want = {"cnn_sha256": [hashlib.sha256(b"first").hexdigest(), hashlib.sha256(b"second").hexdigest()],
            "tta": "flip", "weights": [0.333333, 2.0]}
    assert teacher_key("ens", cnn) == json.dumps(want, sort_keys=True)


def test_teacher_key_without_files_is_the_manifest_sha256_else_the_name():
    from fer_hybrid.artifacts import read_manifest

    models = read_manifest().get("models", {})
    assert teacher_key("no-such-model", object()) == "no-such-model"
    shipped = next((n for n, e in models.items() if e.get("sha256")), None)
    if shipped is None:
        pytest.skip("no shipped model in the manifest")
    assert teacher_key(shipped, types.SimpleNamespace(files=[])) == models[shipped]["sha256"]


class Teacher:
    """A registered model stand-in whose CNN answers 0.75 for class 1 on every face."""

    def __init__(self):
        self.cnn = types.SimpleNamespace(predict_proba=self.proba, tta="flip", calls=0)

    def proba(self, x):
        self.cnn.calls += 1
        return np.tile(np.array([0.25, 0.75], np.float32), (len(x), 1))


def test_teacher_targets_cached_with_info_and_text(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    y = np.array([1, 1, 1, 0, 0, 1])
    teacher = Teacher()
    targets, info, text = teacher_targets(teacher, "t", x, y, 2, 2.0, 0.7, tmp_path, progress=False)
    assert targets.shape == (6, 4) and targets.dtype == np.float32
    np.testing.assert_allclose(targets[3], [0.25, 0.75, 1, 0])
    assert info["train_accuracy"] == pytest.approx(4 / 6) and info["cached"] is False
    assert (info["name"], info["temperature"], info["alpha"], info["tta"]) == ("t", 2.0, 0.7, "flip")
    assert text == "knowledge distillation from t (T=2, alpha=0.7 on the teacher, 0.3 on the FER2013 label)"
    again = teacher_targets(teacher, "t", x, y, 2, 2.0, 0.7, tmp_path, progress=False)
    assert again[1]["cached"] is True and again[1]["cache"] == info["cache"] and teacher.cnn.calls == 1


@pytest.fixture(scope="module")
def tiny():
    from fer_hybrid.predictors import load_keras_model

    return load_keras_model(DATA / "tiny_cnn.keras")


def test_ship_model_warns_above_the_size_limit(tiny, tmp_path):
    path, warning = ship_model(tiny, tmp_path / "m.keras")
    assert path == tmp_path / "m.keras" and path.is_file() and warning is None
    path, warning = ship_model(tiny, tmp_path / "big.keras", max_mb=1e-6)
    assert warning.startswith(f"warning: {path} is 0.") and warning.endswith("MB (> 1e-06 MB limit)")


def test_training_notes():
    assert T.training_notes(None, 3, 2).startswith("trained from random initialisation (weights=None)")
    assert T.training_notes("imagenet", 3, 2) == "initial weights: imagenet"
    assert "the best val accuracy came at the last of 3 epochs" in T.training_notes("imagenet", 3, 3)


def test_ferplus_mix_targets(sample_data, tmp_path, monkeypatch):
    from fer_hybrid.ferplus import FerPlusError

    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path / "nowhere"))
    with pytest.raises((FileNotFoundError, FerPlusError), match="not found"):
        T.ferplus_mix_targets(sample_data.train, sample_data.classes, 0.5)
    rows = ["jpg,split,fer2013_row,ferplus_image,mad_best,mad_second,flag"]
    rows += [f"{key},Training,{i % 13},x.png,1,2,ok" for i, key in enumerate(sample_data.train.keys.tolist())]
    (tmp_path / "fp").mkdir()
    (tmp_path / "fp" / "fer2013new.csv").write_text((DATA / "ferplus_tiny.csv").read_text())
    (tmp_path / "fp" / "kaggle_to_ferplus_map.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path / "fp"))
    targets, text = T.ferplus_mix_targets(sample_data.train, sample_data.classes, 0.5)
    n = len(sample_data.train)
    n_voted = sum(1 for i in range(n) if i % 13 not in (5, 11, 12))
    assert targets.shape == (n, 5) and np.allclose(targets.sum(1), 1)
    assert text.startswith("soft targets: 0.5 x FER2013 one-hot + 0.5 x FER+ vote shares over the 5 classes")
    assert f"({n_voted} of {n} training images have FER+ votes" in text
    with pytest.raises(ValueError, match="mix must be in"):
        T.ferplus_mix_targets(sample_data.train, sample_data.classes, 1.5)


def test_evaluate_shipped_flip_in_graph_equals_flip_tta_outside(tiny, sample_data):
    shipped, predictor, in_graph, ms, as_run = T.evaluate_shipped(tiny, "ti-ny", sample_data, flip_in_graph=True)
    assert as_run and shipped is not tiny and shipped.name == "ti_ny" and ms > 0 and set(in_graph) == {
        "train", "val", "test"}
    shipped, _, outside, _, as_run = T.evaluate_shipped(tiny, "tiny", sample_data, tta=True)
    assert not as_run and shipped is tiny
    for s in in_graph:
        assert outside[s]["accuracy"] == in_graph[s]["accuracy"] and outside[s]["n"] == len(sample_data.split(s))
    plain = T.evaluate_shipped(tiny, "tiny", sample_data)
    assert plain[4] is True and plain[0] is tiny


def test_transfer_report_fields(tiny, sample_data):
    from fer_hybrid.evaluate import evaluate_predictor
    from fer_hybrid.predictors import KerasPredictor

    metrics = evaluate_predictor(KerasPredictor(tiny, "tiny").predict_proba, sample_data)
    result = types.SimpleNamespace(model=tiny, history={"accuracy": [0.5]}, seconds_per_epoch=1.0, epochs_run=1,
                                   best_epoch=1, precision="float32")
    report = T.transfer_report(name="tiny", kind="baseline", cfg=TrainConfig(backbone="baseline"), result=result,
                               metrics=metrics, latency=2.0, artifact=None, data=sample_data, command="cmd",
                               image_size=64, flip_in_graph=True, tta=False, as_run=True, onnx=None,
                               labels_trained_on=T.FER2013_LABELS, teacher=None)
    assert (report["name"], report["kind"], report["weights"], report["backbone"]) == ("tiny", "baseline", None,
                                                                                       "baseline")
    assert report["image_size"] == 64 and report["tta"] == "flip (in the shipped graph)"
    assert report["params"] == tiny.count_params() and report["ms_per_face"] == 2.0
    assert report["labels_trained_on"] == "FER2013 (original labels)" and report["config"]["backbone"] == "baseline"
    assert "under-trained" in report["notes"] and report["figures"] == ["training_curves.png"]
