"""Distillation on augmented views: the fixed views (fer_hybrid.cnn.distill.augmented_views), the teacher's
answers on them (teacher_view_targets, cached), the union training split (transfer_report.distillation_with_views),
an ensemble under another TTA policy (CNNEnsemblePredictor.with_tta) and epochs of a fixed size (epoch_size)."""
from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fer_hybrid.cnn.distill import augmented_views, teacher_view_targets  # noqa: E402
from fer_hybrid.data import Augment  # noqa: E402

CLASSES = ("angry", "fear", "happy", "sad", "surprise")


def faces(n=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_views_are_deterministic_copy_after_copy_and_change_the_faces():
    x = faces()
    v = augmented_views(x, 2, seed=3)
    assert v.shape == (10, 48, 48) and v.dtype == np.uint8
    np.testing.assert_array_equal(v, augmented_views(x, 2, seed=3))
    np.testing.assert_array_equal(v[:5], augmented_views(x, 1, seed=3))  # copy 0 first, then copy 1
    assert not np.array_equal(v[:5], v[5:]) and not np.array_equal(v[:5], x)
    assert not np.array_equal(v, augmented_views(x, 2, seed=4))


def test_views_with_zero_ranges_are_the_faces_and_a_shift_moves_the_content():
    x = faces()
    same = augmented_views(x, 1, seed=0, augment=Augment.none())
    np.testing.assert_array_equal(same, x)
    bright = augmented_views(np.full((3, 48, 48), 100, np.uint8), 1, seed=0,
                             augment=dataclasses.replace(Augment.none(), brightness=0.2))
    assert np.all(np.abs(bright.astype(int) - 100) <= 51) and len(np.unique(bright[:, 0, 0])) == 3


def test_views_reject_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        augmented_views(faces().astype(np.float32), 1, 0)
    with pytest.raises(ValueError, match="copies must be >= 1"):
        augmented_views(faces(), 0, 0)


class Ensemble:
    """A CNN ensemble stand-in: answers class 2 under "flip", class 0 under any other policy; counts calls."""

    def __init__(self, tta="flip-scale", calls=None):
        self.tta, self.files, self.weights = tta, None, [1.0]
        self.calls = calls if calls is not None else []

    def with_tta(self, tta):
        return Ensemble(tta, self.calls)

    def predict_proba(self, x):
        self.calls.append((self.tta, len(x)))
        return np.tile(np.eye(5, dtype=np.float32)[2 if self.tta == "flip" else 0] * 0.8 + 0.04, (len(x), 1))


def test_teacher_view_targets_run_the_teacher_under_the_views_policy_and_cache(tmp_path):
    x, y = faces(4), np.array([2, 2, 0, 1])
    teacher = types.SimpleNamespace(cnn=Ensemble())
    views, labels, proba, info = teacher_view_targets(teacher, "ens", x, y, 5, 2, 7, "flip", tmp_path, progress=False)
    assert views.shape == (8, 48, 48) and labels.tolist() == [2, 2, 0, 1] * 2 and proba.shape == (8, 5)
    assert proba.argmax(1).tolist() == [2] * 8 and teacher.cnn.calls == [("flip", 8)]
    assert (info["copies"], info["seed"], info["tta"], info["cached"]) == (2, 7, "flip", False)
    assert info["train_accuracy"] == pytest.approx(0.5)
    again = teacher_view_targets(teacher, "ens", x, y, 5, 2, 7, "flip", tmp_path, progress=False)
    assert again[3]["cached"] is True and len(teacher.cnn.calls) == 1
    fixed = types.SimpleNamespace(predict_proba=teacher.cnn.predict_proba, tta="none")
    with pytest.raises(ValueError, match="not a CNN ensemble"):
        teacher_view_targets(fixed, "one", x, y, 5, 1, 7, "flip", tmp_path, progress=False)


def test_seed_groups_are_cached_on_their_own_so_a_new_seed_costs_only_its_views(tmp_path):
    x, y = faces(4), np.array([2, 2, 0, 1])
    teacher = types.SimpleNamespace(cnn=Ensemble())
    first = teacher_view_targets(teacher, "ens", x, y, 5, 2, 7, "flip", tmp_path, progress=False)
    views, labels, proba, info = teacher_view_targets(teacher, "ens", x, y, 5, 2, [7, 8], "flip", tmp_path,
                                                      progress=False)
    assert teacher.cnn.calls == [("flip", 8), ("flip", 8)]  # seed 7 came from the cache, seed 8 was computed
    assert views.shape == (16, 48, 48) and labels.tolist() == [2, 2, 0, 1] * 4 and proba.shape == (16, 5)
    np.testing.assert_array_equal(views[:8], first[0])
    np.testing.assert_array_equal(views[8:], augmented_views(x, 2, seed=8))
    assert (info["copies"], info["copies_per_seed"], info["seed"], info["cached"]) == (4, 2, [7, 8], False)
    assert [g["cached"] for g in info["groups"]] == [True, False] and "cache" not in info
    assert info["groups"][0]["cache"] == first[3]["cache"] != info["groups"][1]["cache"]
    with pytest.raises(ValueError, match=r"view seeds must be distinct and at least one, got \[7, 7\]"):
        teacher_view_targets(teacher, "ens", x, y, 5, 1, [7, 7], "flip", tmp_path, progress=False)
    with pytest.raises(ValueError, match="at least one"):
        teacher_view_targets(teacher, "ens", x, y, 5, 1, [], "flip", tmp_path, progress=False)


def test_distillation_with_views_builds_the_union_split(tmp_path, monkeypatch):
    import fer_hybrid.data as data_mod
    import fer_hybrid.predictors as predictors
    from fer_hybrid.data import Split
    from fer_hybrid.evaluation import transfer_report as T

    monkeypatch.setattr(predictors, "load_predictor", lambda name: types.SimpleNamespace(cnn=Ensemble()))
    monkeypatch.setattr(data_mod, "cache_dir", lambda: tmp_path)
    train = Split(faces(3), np.array([0, 2, 4]), np.array(["a.png", "b.png", "c.png"]))
    union, targets, info, text = T.distillation_with_views("ens", train, CLASSES, 2.0, 0.7, 2, 0, "flip")
    assert len(union) == 9 and union.x.dtype == np.uint8 and union.y.tolist() == [0, 2, 4] * 3
    assert union.keys.tolist()[:4] == ["a.png", "b.png", "c.png", "a.png#view0"] and union.keys[-1] == "c.png#view1"
    np.testing.assert_array_equal(union.x[:3], train.x)
    assert targets.shape == (9, 10)
    assert targets[:3, :5].argmax(1).tolist() == [0] * 3      # originals: the teacher's own policy (flip-scale)
    assert targets[3:, :5].argmax(1).tolist() == [2] * 6      # views: the views' policy (flip)
    assert targets[:, 5:].argmax(1).tolist() == [0, 2, 4] * 3  # the FER2013 label half
    assert info["tta"] == "flip-scale" and info["views"]["tta"] == "flip" and info["views"]["copies"] == 2
    assert "2 fixed augmented view(s)" in text and text.startswith("knowledge distillation from ens")
    union, targets, info, text = T.distillation_with_views("ens", train, CLASSES, 2.0, 0.7, 1, [0, 5], "flip")
    assert len(union) == 9 and union.keys[-1] == "c.png#view1" and targets.shape == (9, 10)
    assert info["views"]["seed"] == [0, 5] and "2 fixed augmented view(s)" in text


def test_an_ensemble_under_another_policy_shares_its_members():
    from fer_hybrid.hybrid import CNNEnsemblePredictor

    inp = keras.Input((48, 48, 1))
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inp)))
    ens = CNNEnsemblePredictor([model], tta="flip-scale")
    flip = ens.with_tta("flip")
    assert (ens.tta, len(ens.views), flip.tta, len(flip.views)) == ("flip-scale", 6, "flip", 2)
    assert flip.members is ens.members
    x = faces(3)
    np.testing.assert_allclose(flip.predict_proba(x), CNNEnsemblePredictor([model], tta="flip").predict_proba(x),
                               atol=1e-6)
    with pytest.raises(ValueError, match="unknown TTA policy"):
        ens.with_tta("sideways")


def test_epoch_size_sets_the_samples_per_epoch(tmp_path):
    from fer_hybrid.cnn.train import TrainConfig, fit
    from fer_hybrid.data import FER2013, Augment, Split

    rng = np.random.default_rng(0)
    x, y = faces(40), rng.integers(0, 5, 40)
    keys = np.array([f"k{i}" for i in range(40)])
    data = FER2013(Split(x, y, keys), Split(x[:10], y[:10], keys[:10]), Split(x[:10], y[:10], keys[:10]),
                   CLASSES, "synthetic", "0" * 64)
    cfg = TrainConfig(backbone="baseline", epochs=2, batch_size=8, precision="float32", epoch_size=16,
                      augment=dataclasses.asdict(Augment.none()))
    res = fit(cfg, data, tmp_path / "ckpt", verbose=0)
    last = keras.models.load_model(tmp_path / "ckpt" / "last.keras")  # compiled, with the optimizer's step count
    assert int(last.optimizer.iterations) == 4 and len(res.history["val_accuracy"]) == 2  # 16 samples = 2 batches
    with pytest.raises(ValueError, match="epoch_size must be a positive"):
        fit(dataclasses.replace(cfg, epoch_size=0), data, tmp_path / "ckpt2", verbose=0)
    assert not (tmp_path / "ckpt2").exists()  # refused before anything is written
