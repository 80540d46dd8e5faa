"""Training code path on the 70-image fixture with a tiny model (seconds)."""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.cnn.train import (TrainConfig, _datasets, balanced_class_weights, build, fit, load_best, make_strategy,
                                  predict_proba, save_model)
from fer_hybrid.data import Augment
from fer_hybrid.reports import REQUIRED_KEYS, read_report

ROOT = Path(__file__).resolve().parents[1]
TINY = {"filters": (4, 8), "convs_per_block": 1}


def tiny_config(**kw) -> TrainConfig:
    base = dict(backbone="baseline", epochs=1, batch_size=16, precision="float32", patience=5,
                model_kwargs=TINY, augment=Augment(rotation=0.0, zoom=0.0).__dict__)
    base.update(kw)
    return TrainConfig(**base)


def test_fit_writes_checkpoints_and_returns_float32_model(sample_data, tmp_path):
    result = fit(tiny_config(), sample_data, tmp_path, verbose=0)
    assert (tmp_path / "best.keras").exists() and (tmp_path / "last.keras").exists()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 1 and result.epochs_run == 1 and result.best_epoch == 1
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert result.seconds_per_epoch > 0
    p = predict_proba(result.model, sample_data.test.x)
    assert p.shape == (10, 5) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert all(w.dtype == "float32" for w in result.model.weights)


def test_fit_resumes_from_last_checkpoint(sample_data, tmp_path, capsys):
    fit(tiny_config(epochs=1), sample_data, tmp_path, verbose=0)
    result = fit(tiny_config(epochs=2), sample_data, tmp_path, verbose=1)
    assert "resuming baseline from epoch 1" in capsys.readouterr().out
    assert result.epochs_run == 2
    assert len(result.history["val_accuracy"]) == 2


def test_tta_averages_flipped_predictions(sample_data, tmp_path):
    model = fit(tiny_config(), sample_data, tmp_path, verbose=0).model
    x = sample_data.test.x
    expected = (predict_proba(model, x) + predict_proba(model, x[:, :, ::-1])) / 2
    np.testing.assert_allclose(predict_proba(model, x, tta=True), expected, atol=1e-6)


def test_mirrored_strategy_runs_on_cpu(sample_data, tmp_path):
    result = fit(tiny_config(strategy="mirrored"), sample_data, tmp_path, verbose=0)
    assert result.epochs_run == 1


def test_bad_choices_raise_listing_valid_values(sample_data, tmp_path):
    with pytest.raises(ValueError, match="default, mirrored, multiworker"):
        make_strategy("tpu-pod")
    with pytest.raises(ValueError, match="adam, adamw, sgd"):
        fit(tiny_config(optimizer="rmsprop"), sample_data, tmp_path, verbose=0)


def test_fit_on_soft_targets_scores_val_on_hard_labels(sample_data, tmp_path):
    k = len(sample_data.classes)
    targets = np.full((len(sample_data.train), k), 1.0 / k, np.float32)
    targets[np.arange(len(targets)), sample_data.train.y] += 0.5
    targets /= targets.sum(axis=1, keepdims=True)
    train_ds, val_ds = _datasets(tiny_config(augment=Augment.none().__dict__), sample_data, 8, targets)
    _, t = next(iter(train_ds))
    assert t.dtype == "float32" and t.shape == (8, k)
    _, v = next(iter(val_ds))
    np.testing.assert_array_equal(v.numpy(), np.eye(k)[sample_data.val.y[:len(v)]])   # val: FER2013 one-hot
    result = fit(tiny_config(), sample_data, tmp_path, verbose=0, train_targets=targets)
    acc = result.history["val_accuracy"][0]
    p = predict_proba(load_best(tmp_path), sample_data.val.x)
    assert acc == pytest.approx(float((p.argmax(1) == sample_data.val.y).mean()), abs=1e-6)
    with pytest.raises(ValueError, match="one row per training image"):
        fit(tiny_config(), sample_data, tmp_path / "bad", verbose=0, train_targets=targets[:3])


def test_build_warm_starts_every_layer_from_a_whole_keras_model(tmp_path):
    """A trained .keras of the same backbone continues training from all its weights (also for backbones whose
    own weight files load into a sub-model only, like baseline and vggface)."""
    trained = build(tiny_config(seed=1), 5)
    trained.set_weights([w + 0.01 * (i + 1) for i, w in enumerate(trained.get_weights())])
    path = save_model(trained, tmp_path / "trained.keras")
    warm = build(tiny_config(weights=str(path)), 5)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(warm.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-6)
    cold = build(tiny_config(), 5)
    assert not np.allclose(cold.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-6)


def test_build_warm_starts_from_a_flip_in_graph_file_and_refuses_another_backbone(tmp_path):
    """A model shipped with its flip TTA in the graph (--flip-in-graph) warm-starts from the network inside;
    a file of a different network is a ValueError naming it, not a silent partial load."""
    from fer_hybrid.cnn.export import is_flip_tta, with_flip_tta, without_flip_tta

    trained = build(tiny_config(seed=1), 5)
    trained.set_weights([w + 0.01 * (i + 1) for i, w in enumerate(trained.get_weights())])
    wrapped = with_flip_tta(trained, "wrapped")
    assert is_flip_tta(wrapped) and not is_flip_tta(trained) and without_flip_tta(wrapped) is trained
    with pytest.raises(ValueError, match="is not a flip-TTA wrapper"):
        without_flip_tta(trained)
    path = save_model(wrapped, tmp_path / "wrapped.keras")
    warm = build(tiny_config(weights=str(path)), 5)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(warm.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-6)
    other = save_model(build(tiny_config(model_kwargs={"filters": (4, 8, 16), "convs_per_block": 1}), 5),
                       tmp_path / "other.keras")
    with pytest.raises(ValueError, match=f"{other} does not fit the baseline backbone"):
        build(tiny_config(weights=str(other)), 5)


def test_balanced_class_weights_inverse_frequency():
    w = balanced_class_weights(np.array([0, 0, 0, 1]), 2)
    assert w == pytest.approx({0: 4 / 6, 1: 2.0})


def test_experiment_script_writes_schema_report(sample_tar, tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    monkeypatch.setattr(sys, "argv", ["experiments/cnn_baseline.py"])
    code = cnn_transfer.main(["--data", str(sample_tar), "--backbone", "baseline", "--epochs", "1",
                              "--batch-size", "16", "--precision", "float32", "--name", "tiny",
                              "--reports", str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt")],
                             kind="baseline")
    assert code == 0
    report = read_report(tmp_path / "reports" / "tiny" / "report.json")
    for key in REQUIRED_KEYS:
        node = report
        for part in key.split("."):
            node = node[part]
    assert report["kind"] == "baseline" and report["weights"] is None and report["epochs"] == 1
    assert report["metrics"]["test"]["n"] == 10
    assert "random initialisation" in report["notes"]
    assert (tmp_path / "reports" / "tiny" / "training_curves.png").exists()


def test_experiment_script_trains_on_ferplus_soft_targets(sample_tar, sample_data, tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    # a FER+ folder whose map sends every sample training image to one of the tiny csv's 13 vote rows
    votes = (ROOT / "tests" / "data" / "ferplus_tiny.csv").read_text()
    rows = ["jpg,split,fer2013_row,ferplus_image,mad_best,mad_second,flag"]
    rows += [f"{key},Training,{i % 13},x.png,1,2,ok" for i, key in enumerate(sample_data.train.keys.tolist())]
    (tmp_path / "fp").mkdir()
    (tmp_path / "fp" / "fer2013new.csv").write_text(votes)
    (tmp_path / "fp" / "kaggle_to_ferplus_map.csv.gz").write_bytes(gzip.compress("\n".join(rows).encode()))
    args = ["--data", str(sample_tar), "--backbone", "baseline", "--epochs", "1", "--batch-size", "16",
            "--precision", "float32", "--name", "fp", "--reports", str(tmp_path / "reports"),
            "--checkpoints", str(tmp_path / "ckpt"), "--ferplus-mix", "0.5"]
    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path / "fp"))
    assert cnn_transfer.main(args) == 0
    report = read_report(tmp_path / "reports" / "fp" / "report.json")
    n_voted = sum(1 for i in range(len(sample_data.train)) if i % 13 not in (5, 11, 12))  # rows 5, 11, 12: no study votes
    assert report["config"]["ferplus_mix"] == 0.5
    assert report["labels_trained_on"].startswith("soft targets: 0.5 x FER2013 one-hot + 0.5 x FER+ vote shares")
    assert f"({n_voted} of {len(sample_data.train)} training images" in report["labels_trained_on"]
    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path / "nowhere"))
    assert cnn_transfer.main(args + ["--no-resume"]) == 2
    assert "FER+ file(s) not found" in capsys.readouterr().err


def test_experiment_script_missing_data_exits_2(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz")]) == 2
    assert "FER2013 source not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--teacher-views", "2"], ["--teacher", "ensemble", "--teacher-views", "-1"]])
def test_experiment_script_teacher_views_need_a_teacher(argv, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz")] + argv) == 2
    assert capsys.readouterr().err.strip() == "error: --teacher-views needs --teacher and a count >= 0"


def test_experiment_script_view_seeds_must_be_distinct(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    argv = ["--data", str(tmp_path / "nope.tar.gz"), "--teacher", "ensemble", "--teacher-views", "1",
            "--teacher-views-seed", "0", "0"]
    assert cnn_transfer.main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --teacher-views-seed values must be distinct, got [0, 0]"
