"""Knowledge distillation: targets, the loss's known answers, the label-half accuracy, and a tiny fit."""
import dataclasses

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_hybrid.cnn.distill import (DistillationLoss, LabelAccuracy, cached_teacher_proba,  # noqa: E402
                                    distillation_targets)


def test_targets_are_teacher_then_one_hot():
    t = np.array([[0.7, 0.1, 0.1, 0.05, 0.05], [0.2, 0.2, 0.2, 0.2, 0.2]], np.float32)
    out = distillation_targets(t, np.array([3, 0]), 5)
    assert out.shape == (2, 10) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, :5], t)
    np.testing.assert_array_equal(out[:, 5:].argmax(1), [3, 0])
    with pytest.raises(ValueError, match="expected"):
        distillation_targets(t, np.array([1]), 5)
    with pytest.raises(ValueError, match="summing to 1"):
        distillation_targets(t * 2, np.array([1, 2]), 5)


def test_loss_known_answers():
    p = np.array([[0.6, 0.1, 0.1, 0.1, 0.1]], np.float32)
    onehot = np.eye(5, dtype=np.float32)[[0]]
    same = np.concatenate([p, onehot], 1)
    # student == teacher: the KL term is 0, so the loss is (1 - alpha) * CE = 0.3 * -log 0.6
    assert float(DistillationLoss(2.0, 0.7)(same, p)) == pytest.approx(0.3 * -np.log(0.6), rel=1e-5)
    # alpha = 1, T = 1: pure KL(teacher || student)
    q = np.array([[0.2, 0.2, 0.2, 0.2, 0.2]], np.float32)
    kl = float(np.sum(p * np.log(p / q)))
    assert float(DistillationLoss(1.0, 1.0)(same, q)) == pytest.approx(kl, rel=1e-4)
    with pytest.raises(ValueError):
        DistillationLoss(0.0, 0.5)


def test_label_accuracy_scores_the_label_half():
    y_pred = np.array([[0.9, 0.1, 0, 0, 0], [0.1, 0.9, 0, 0, 0]], np.float32)
    teacher_says_class_0 = np.tile(np.eye(5, dtype=np.float32)[0], (2, 1))
    labels = np.eye(5, dtype=np.float32)[[1, 1]]
    m = LabelAccuracy()
    m.update_state(np.concatenate([teacher_says_class_0, labels], 1), y_pred)
    assert float(m.result()) == pytest.approx(0.5)


def test_teacher_cache_hits_and_keys_by_images(tmp_path):
    calls = []

    def teacher(x):
        calls.append(len(x))
        return np.full((len(x), 5), 0.2, np.float32)

    x = np.random.default_rng(0).integers(0, 255, (10, 48, 48), dtype=np.uint8)
    p1, info1 = cached_teacher_proba(teacher, x, "t1", tmp_path, batch_size=4, progress=False)
    p2, info2 = cached_teacher_proba(teacher, x, "t1", tmp_path, batch_size=4, progress=False)
    assert calls == [4, 4, 2] and not info1["cached"] and info2["cached"]
    np.testing.assert_array_equal(p1, p2)
    assert info2["seconds"] == pytest.approx(info1["seconds"])
    cached_teacher_proba(teacher, x[:5], "t1", tmp_path, progress=False)   # other images: computed again
    cached_teacher_proba(teacher, x, "t2", tmp_path, progress=False)       # other teacher: computed again
    assert len(calls) == 5
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_fit_distils_a_tiny_model(tmp_path):
    from fer_hybrid.cnn.train import TrainConfig, fit
    from fer_hybrid.data import FER2013, Augment, Split

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 48, 48), dtype=np.uint8)
    y = rng.integers(0, 5, 40)
    keys = np.array([f"k{i}" for i in range(40)])
    data = FER2013(Split(x, y, keys), Split(x[:10], y[:10], keys[:10]), Split(x[:10], y[:10], keys[:10]),
                   ("angry", "fear", "happy", "sad", "surprise"), "synthetic", "0" * 64)
    teacher = np.full((40, 5), 0.2, np.float32)
    cfg = TrainConfig(backbone="baseline", epochs=1, batch_size=20, precision="float32", distill_temperature=2.0,
                      distill_alpha=0.5, augment=dataclasses.asdict(Augment.none()))
    res = fit(cfg, data, tmp_path / "ckpt", verbose=0, train_targets=distillation_targets(teacher, y, 5))
    assert res.model.output_shape == (None, 5)
    assert 0.0 <= res.history["val_accuracy"][0] <= 1.0
    with pytest.raises(ValueError, match="one row per training image"):
        fit(cfg, data, tmp_path / "ckpt2", verbose=0, train_targets=teacher)
