"""The landmark track's library steps (fer_hybrid.landmarks.selection and the LandmarkEnsemble additions it
uses): splits, feature blocks, SPECs, the val screen, ensembles on train + mirror images with weights and mirror
TTA chosen on val, probabilities, records, ablation tables, shipping. Tiny synthetic data; seconds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_hybrid import artifacts
from fer_hybrid.landmarks import selection as sel
from fer_hybrid.landmarks.appearance import FaceFeatures, LandmarkAppearance
from fer_hybrid.landmarks.extract import AppearanceExtraction, Extraction
from fer_hybrid.landmarks.features import LandmarkFeatures, mirror_points
from fer_hybrid.landmarks.models import LandmarkEnsemble, make_member, member_importance, member_params
from fer_hybrid.landmarks.predictor import save_landmark_model
from test_landmark_features import _faces   # plausible jittered 68-point faces
from test_landmark_models import TINY as TINY_MEMBERS   # tiny member settings

TINY = {k: TINY_MEMBERS[k] for k in ("xgboost", "logreg")}
TINY_XGB = TINY["xgboost"]
N_GEO = len(LandmarkFeatures().fit(np.zeros((1, 68, 2))).feature_names_)


def _points(y: np.ndarray, seed: int) -> np.ndarray:
    """Plausible faces whose mouth opens with the class (a learnable geometric signal)."""
    p = _faces(len(y), seed)
    p[:, 57, 1] += 1.5 * y
    p[:, 66, 1] += 1.5 * y
    return p


def _labels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, n)


Y = {"train": _labels(150, 0), "val": _labels(80, 1), "test": _labels(60, 2)}
POINTS = {s: _points(y, i) for i, (s, y) in enumerate(Y.items())}


def _blocks(app: LandmarkAppearance, signal: float, seed: int = 0) -> sel.AppearanceBlocks:
    """Synthetic raw descriptors of ``app``'s width: class signal in the first 5 columns (0 = pure noise)."""
    rng = np.random.default_rng(seed)

    def raw(y):
        r = rng.normal(size=(len(y), app.n_raw)).astype(np.float32)
        r[:, :5] += signal * np.eye(5, dtype=np.float32)[y]
        return r

    return sel.AppearanceBlocks({s: raw(y) for s, y in Y.items()}, {s: raw(y) for s, y in Y.items()},
                                {"seconds": 1.5})


def _track(signals: dict | None = None, points: dict = POINTS) -> sel.TrackFeatures:
    """TrackFeatures over ``points``; appearance blocks by SPEC from ``signals`` {spec: signal strength}."""
    signals = signals or {}
    return sel.TrackFeatures(points, lambda app: _blocks(app, signals.get(sel.spec_of(app), 0.0)))


def _tiny_ensemble(X, y, kinds=("xgboost", "logreg"), **fit) -> LandmarkEnsemble:
    return LandmarkEnsemble({k: make_member(k, TINY[k], n_jobs=1) for k in kinds}, n_jobs=1).fit(X, y, **fit)


# ------------------------------------------------------------------------------------------------
# LandmarkEnsemble additions (models.py)
# ------------------------------------------------------------------------------------------------
def test_fit_with_mirror_rows_equals_fitting_the_concatenation():
    rng = np.random.default_rng(0)
    X, Xm, y = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), np.arange(60) % 5
    a = _tiny_ensemble(X, y, ("logreg",), X_mirror=Xm)
    b = _tiny_ensemble(np.r_[X, Xm], np.r_[y, y], ("logreg",))
    np.testing.assert_array_equal(a.members["logreg"].steps[-1][1].coef_, b.members["logreg"].steps[-1][1].coef_)
    assert a.members["logreg"].steps[0][1].n_samples_seen_ == 120
    with pytest.raises(ValueError, match="X_mirror .* must have the shape of X"):
        _tiny_ensemble(X, y, ("logreg",), X_mirror=Xm[:10])


def _noisy_val():
    """A logreg member that is right on clean features; val faces whose features are corrupted in half the rows,
    and 'mirror images' that are clean: averaging over both helps."""
    rng = np.random.default_rng(3)
    y = np.arange(200) % 5
    clean = np.eye(5)[y] * 3 + rng.normal(0, 0.3, (200, 5))
    noisy = clean.copy()
    noisy[::2] = np.roll(noisy[::2], 1, axis=1) * 0.6   # wrong, and less confident than the clean rows
    ens = _tiny_ensemble(clean, y, ("logreg",))
    ens.members["copy"] = ens.members["logreg"]
    ens.weights = {"logreg": 1.0, "copy": 1.0}
    return ens, noisy, clean, y


def test_choose_weights_picks_mirror_tta_only_when_it_is_more_accurate():
    ens, noisy, clean, y = _noisy_val()
    acc = ens.choose_weights(noisy, y, clean)
    assert set(acc) == {"no_tta", "mirror_tta"} and acc["mirror_tta"] > acc["no_tta"]
    assert ens.tta_mirror is True
    assert acc["no_tta"] == pytest.approx(0.5) and acc["mirror_tta"] == 1.0
    assert sum(ens.weights.values()) == pytest.approx(1.0) and set(ens.weights) == {"logreg", "copy"}
    # equal accuracy with the mirror images (here: the same features) -> no TTA
    assert ens.choose_weights(clean, y, clean) == {"no_tta": 1.0, "mirror_tta": 1.0} and ens.tta_mirror is False
    # without mirror images: no TTA considered
    assert set(ens.choose_weights(noisy, y)) == {"no_tta"} and ens.tta_mirror is False


def test_member_and_ensemble_proba_average_the_mirror_images_only_with_tta():
    ens, noisy, clean, _ = _noisy_val()
    ens.tta_mirror = False
    np.testing.assert_array_equal(ens.predict_proba(noisy, clean), ens.predict_proba(noisy))
    ens.tta_mirror = True
    p, q = ens.member_proba(noisy), ens.member_proba(clean)
    both = ens.member_proba(noisy, clean)
    np.testing.assert_allclose(both["logreg"], (p["logreg"] + q["logreg"]) / 2)
    np.testing.assert_allclose(ens.predict_proba(noisy, clean), ens.combine(both))
    np.testing.assert_array_equal(ens.predict_proba(noisy), ens.combine(p))   # no mirror images given: no TTA


def test_n_params_counts_weights_and_tree_nodes():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 6)), np.arange(80) % 5
    ens = LandmarkEnsemble({"logreg": make_member("logreg", {}, 1),
                            "mlp": make_member("mlp", {"hidden_layer_sizes": (7,), "max_iter": 5}, 1),
                            "xgboost": make_member("xgboost", TINY_XGB, 1),
                            "hgb": make_member("hgb", {"max_iter": 3, "max_depth": 2}, 1)}, n_jobs=1)
    with pytest.warns(Warning):   # the MLP stops after max_iter=5 without converging
        ens.fit(X, y)
    assert ens.n_params("logreg") == 5 * 6 + 5
    assert ens.n_params("mlp") == 6 * 7 + 7 + 7 * 5 + 5
    dump = ens.members["xgboost"].get_booster().get_dump()
    assert ens.n_params("xgboost") == sum(len(t.strip().splitlines()) for t in dump) > 0
    assert ens.n_params("hgb") > 0
    assert ens.n_params() == sum(member_params(m) for m in ens.members.values())
    with pytest.raises(KeyError):
        ens.n_params("svm")


def test_member_importance_methods_and_errors():
    rng = np.random.default_rng(0)
    y = np.arange(200) % 5
    X = rng.normal(size=(200, 8))
    X[:, 3] += 3 * y
    names = [f"f{i}" for i in range(8)]
    ens = _tiny_ensemble(X, y)
    imp, how = member_importance(ens, "xgboost", X, y, names)
    assert "gain" in how and list(imp)[0] == "f3"
    imp, how = member_importance(ens, "logreg", X, y, names)
    assert "coefficient" in how and list(imp)[0] == "f3" and sum(imp.values()) == pytest.approx(1.0)
    imp, how = member_importance(ens, "ensemble", X, y, names, n_candidates=2)
    assert "permutation" in how and len(imp) <= 2 and list(imp)[0] == "f3" and imp["f3"] > 0.3
    with pytest.raises(ValueError, match="unknown member 'svm'"):
        member_importance(ens, "svm", X, y, names)
    with pytest.raises(ValueError, match="'xgboost' member's gain"):
        member_importance(_tiny_ensemble(X, y, ("logreg",)), "ensemble", X, y, names)


# ------------------------------------------------------------------------------------------------
# selection.py
# ------------------------------------------------------------------------------------------------
def test_study_splits_subset_is_seeded_sorted_and_leaves_val_test_whole(sample_data):
    keys, y = sel.study_splits(sample_data)
    assert [len(keys[s]) for s in ("train", "val", "test")] == [25, 15, 10]
    np.testing.assert_array_equal(y["val"], sample_data.val.y)
    k10, y10 = sel.study_splits(sample_data, subset=10)
    rows = np.flatnonzero(np.isin(sample_data.train.keys, k10["train"]))
    assert len(rows) == 10 and list(sample_data.train.keys[rows]) == list(k10["train"])   # original order
    np.testing.assert_array_equal(y10["train"], sample_data.train.y[rows])
    assert list(sel.study_splits(sample_data, subset=10)[0]["train"]) == list(k10["train"])   # seeded
    assert list(sel.study_splits(sample_data, subset=10, seed=1)[0]["train"]) != list(k10["train"])
    assert len(k10["test"]) == 10 and len(k10["val"]) == 15
    with pytest.raises(ValueError, match="positive number"):
        sel.study_splits(sample_data, subset=-3)


def test_landmark_record_counts_failures_per_split_and_class():
    pts = np.zeros((4, 68, 2), np.float32)
    pts[1] = np.nan
    ext = Extraction(np.array(["a", "b", "c", "d"]), pts, "fixed-mirror", 4, 2.0, 2, "0" * 64)
    rec = sel.landmark_record(ext, {"train": pts[:2], "val": pts[2:]}, {"train": np.array([0, 1]),
                                                                        "val": np.array([1, 1])}, ("a", "b"))
    assert rec["method"] == "fixed-mirror" and rec["n_images"] == 4 and rec["faces_per_second"] == 2.0
    assert rec["failure_rate_all_7_classes"] == 0.25
    assert rec["failure"]["train"]["overall"] == 0.5 and rec["failure"]["train"]["per_class"] == {"a": 0.0, "b": 1.0}
    assert rec["failure"]["val"]["n_failed"] == 0


def test_track_features_geometry_mirror_and_matrices():
    track = _track()
    assert track.G["train"].shape == (150, N_GEO) and np.isfinite(track.G["val"]).all()
    np.testing.assert_array_equal(track.G_mirror["test"], LandmarkFeatures().fit(POINTS["train"]).transform(
        mirror_points(POINTS["test"])))
    app = sel.parse_spec("hog:corners:0.5:1:none")
    blocks = track.appearance(app)
    X, Xm = track.matrices(FaceFeatures(track.geometry, app), blocks)
    assert X["val"].shape == (80, N_GEO + app.n_raw) and X["val"].dtype == np.float64
    np.testing.assert_array_equal(X["val"][:, :N_GEO], track.G["val"])
    np.testing.assert_array_equal(Xm["val"][:, N_GEO:], blocks.raw_mirror["val"])
    X, Xm = track.matrices(FaceFeatures(None, app), blocks)
    assert X["train"].shape == (150, app.n_raw)
    X, Xm = track.matrices(FaceFeatures(track.geometry))
    np.testing.assert_array_equal(Xm["train"], track.G_mirror["train"])
    with pytest.raises(ValueError, match="need its AppearanceBlocks"):
        track.matrices(FaceFeatures(None, app))
    with pytest.raises(ValueError, match="without appearance_of"):
        sel.TrackFeatures(POINTS).appearance(app)
    with pytest.raises(ValueError, match="'train' split"):
        sel.TrackFeatures({"val": POINTS["val"]})


def test_fer2013_appearance_reads_rows_by_key_with_a_record(monkeypatch):
    """The dataset extraction itself is tested in test_landmark_appearance; here: what the wrapper makes of it."""
    app = LandmarkAppearance("hog", "corners", cells=1)
    raw = np.arange(3 * app.n_raw, dtype=np.float32).reshape(3, app.n_raw)
    calls = []

    def fake(source, appearance, method, n_jobs, refresh):
        calls.append((source, appearance, method, n_jobs, refresh))
        return AppearanceExtraction(np.array(["a", "b", "c"]), raw, -raw, appearance.descriptor_params(), method,
                                    2.0, "0" * 64)

    monkeypatch.setattr(sel, "extract_appearance_fer2013", fake)
    b = sel.fer2013_appearance("src", app, {"val": np.array(["c", "a"]), "test": np.array(["b"])}, n_jobs=2,
                               refresh=True)
    assert calls == [("src", app, sel.METHOD, 2, True)]
    np.testing.assert_array_equal(b.raw["val"], raw[[2, 0]])
    np.testing.assert_array_equal(b.raw_mirror["test"], -raw[[1]])
    assert b.record["settings"] == app.descriptor_params() and b.record["n_raw"] == app.n_raw
    assert b.record["seconds"] == 2.0 and b.record["faces_per_second"] == 3.0   # faces + mirror images per second


@pytest.mark.parametrize("spec", ["hog:core:0.5:2:64", "lbp:corners:0.35:3:none", "gabor:full:0.7:1:8"])
def test_spec_round_trip(spec):
    app = sel.parse_spec(spec)
    assert sel.spec_of(app) == spec and isinstance(app, LandmarkAppearance)
    assert app.pca == (None if spec.endswith("none") else int(spec.split(":")[-1]))


@pytest.mark.parametrize("spec, detail", [("hog:core:0.5", "not enough values"), ("sift:core:0.5:2:64", "sift"),
                                          ("hog:core:big:2:64", "big"), ("hog:nose:0.5:2:64", "nose")])
def test_bad_spec_names_the_format(spec, detail):
    with pytest.raises(ValueError, match=r"bad appearance SPEC .*descriptor:sites:patch:cells:pca") as e:
        sel.parse_spec(spec)
    assert detail in str(e.value)


def test_quick_val_accuracy_learns_a_signal_and_not_noise():
    rng = np.random.default_rng(0)
    X, Xv = rng.normal(size=(150, 6)), rng.normal(size=(80, 6))
    X[:, 0] += 5 * Y["train"]
    assert sel.quick_val_accuracy(X, Y["train"], Xv + np.c_[5 * Y["val"], np.zeros((80, 5))], Y["val"], TINY_XGB) > 0.9
    assert sel.quick_val_accuracy(X, Y["train"], Xv, Y["val"], TINY_XGB) < 0.5


def test_screen_chooses_the_candidate_best_with_geometry():
    specs = ["hog:corners:0.5:1:8", "lbp:corners:0.5:1:none", "hog:corners:0.35:1:none"]
    no_signal = {s: _points(np.zeros_like(y), i) for i, (s, y) in enumerate(Y.items())}
    track = _track({specs[1]: 4.0}, no_signal)   # only the LBP candidate carries class signal
    candidates = [sel.parse_spec(s) for s in specs]
    log = []
    rows, geo, chosen = sel.screen_candidates(candidates, track, Y, params=TINY_XGB, log=log.append)
    assert chosen is candidates[1] and [r["spec"] for r in rows] == specs
    assert rows[1]["val_both"] == max(r["val_both"] for r in rows) and rows[1]["val_appearance"] > 0.9
    assert rows[0]["val_appearance"] < 0.5 and rows[0]["extraction_seconds"] == 1.5
    assert candidates[0].components_.shape == (8, 96)   # each candidate's PCA is fitted in the screen
    assert geo["spec"] == "geometry only" and geo["val_both"] < 0.5
    assert log[-1] == f"chosen appearance: {specs[1]}" and len(log) == 5
    with pytest.raises(ValueError, match="no appearance candidates"):
        sel.screen_candidates([], track, Y)


@pytest.fixture(scope="module")
def ablation():
    app = sel.parse_spec("hog:corners:0.5:1:6")
    track = _track({"hog:corners:0.5:1:6": 3.0})
    blocks = track.appearance(app)
    return track, app, blocks, sel.fit_ablation(track, app, blocks, Y, members=TINY, n_jobs=1)


def test_fit_ablation_fits_three_feature_sets_on_train_plus_mirror(ablation):
    track, app, blocks, fitted = ablation
    assert list(fitted) == list(sel.PARTS)
    assert {p: f.X["val"].shape[1] for p, f in fitted.items()} == {"geometry": N_GEO, "appearance": 6, "both": N_GEO + 6}
    np.testing.assert_allclose(app.mean_, np.r_[blocks.raw["train"], blocks.raw_mirror["train"]].mean(0), atol=1e-5)
    for part, f in fitted.items():
        rec = f.record()
        assert set(rec) == {"n_features", "weights", "mirror_tta", "weights_val_accuracy", "fit_seconds"}
        assert set(rec["weights_val_accuracy"]) == {"no_tta", "mirror_tta"} and set(rec["fit_seconds"]) == set(TINY)
        assert sum(rec["weights"].values()) == pytest.approx(1.0)
        assert f.ensemble.members["logreg"].steps[0][1].n_samples_seen_ == 2 * len(Y["train"])   # mirror rows
        p = f.proba()
        assert set(p) == {"train", "val", "test"} and p["test"].shape == (60, 5)
        best = max(rec["weights_val_accuracy"].values())
        assert (p["val"].argmax(1) == Y["val"]).mean() == pytest.approx(best)   # the accuracy it was chosen with
    assert max(fitted["both"].weights_val_accuracy.values()) > 0.9
    with pytest.raises(ValueError, match="unknown ablation part"):
        sel.fit_ablation(track, app, blocks, Y, members=TINY, parts=("pixels",))


def test_split_probas_members_and_their_soft_vote(ablation):
    f = ablation[3]["both"]
    probas = sel.split_probas(f.ensemble, f.X, f.X_mirror)
    assert list(probas) == ["xgboost", "logreg", "ensemble"]
    np.testing.assert_allclose(probas["ensemble"]["val"], f.ensemble.combine(
        {k: probas[k]["val"] for k in f.ensemble.members}))
    np.testing.assert_allclose(probas["ensemble"]["test"], f.proba()["test"])
    np.testing.assert_allclose(probas["logreg"]["train"].sum(1), 1.0)


def test_records_descriptions_and_ablation_tables(ablation, tmp_path):
    track, app, blocks, fitted = ablation
    screen = [{"spec": sel.spec_of(app), "n_raw": app.n_raw, "val_appearance": 0.5, "val_both": 0.75}]
    training = sel.training_record(app, fitted["both"], screen, {"spec": "geometry only", "val_both": 0.25}, 150,
                                   "python experiments/landmarks.py", members=TINY, screen_params=TINY_XGB)
    assert training["appearance"] == "hog:corners:0.5:1:6" and training["n_train_rows"] == 300
    assert training["members"] == TINY and training["landmark_method"] == sel.METHOD
    json.dumps(training, default=float)   # saved in ensemble.json
    d = sel.describe_chosen(fitted["both"].ensemble, "ensemble", training, N_GEO + 6, 4, " (idle)")
    assert d["params"] == fitted["both"].ensemble.n_params() and d["ensemble_weights"] == fitted["both"].ensemble.weights
    assert d["notes"].startswith(f"soft-vote ensemble on {N_GEO + 6} features") and d["notes"].endswith("(idle)")
    m = sel.describe_chosen(fitted["both"].ensemble, "logreg", training, N_GEO + 6, 4)
    assert m["members"] == {"C": 1.0} and "ensemble_weights" not in m and "logistic regression" in m["backbone"]
    with pytest.raises(ValueError, match="unknown member 'mlp'"):
        sel.describe_chosen(fitted["both"].ensemble, "mlp", training, 1, 4)
    g = fitted["geometry"].describe("run", "geometry", training["appearance"])
    assert g["appearance"] is None and g["n_features"] == N_GEO and "ablation of run" in g["notes"]
    assert fitted["appearance"].describe("run", "appearance", "x")["appearance"] == "x"
    metrics = {p: {s: {"accuracy": a} for s, a in (("val", 0.5), ("test", 0.25))} for p in fitted}
    md = sel.write_ablation(tmp_path / "abl", fitted, metrics, training)
    text = md.read_text()
    assert "| hog:corners:0.5:1:6 | 96 | 0.5000 | 0.7500 |" in text and "| geometry only | – | – | 0.2500 |" in text
    assert "weights (xgboost, logreg)" in text and f"| both | {N_GEO + 6} |" in text and "0.5000 | 0.2500 |" in text
    out = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert out["chosen_appearance"] == "hog:corners:0.5:1:6" and out["ensembles"]["geometry"]["test"] == 0.25


def test_ship_if_better_copies_records_and_refuses_worse(ablation, tmp_path):
    track, app, blocks, fitted = ablation
    models = tmp_path / "models"
    with_app = save_landmark_model(fitted["both"].ensemble, tmp_path / "a", app)
    geo_only = save_landmark_model(fitted["geometry"].ensemble, tmp_path / "g")
    log = []
    shipped = sel.ship_if_better(with_app, models, 0.6, log=log.append)   # nothing shipped yet: ships
    assert shipped == models / "landmarks" / "ensemble.json" and (models / "landmarks" / "appearance.npz").exists()
    assert shipped.read_bytes() == with_app.read_bytes() and log[-1].startswith("shipped to")
    metrics = {s: {"accuracy": 0.6, "macro_f1": 0.5} for s in ("train", "val", "test")}
    entry = sel.record_shipped(shipped, models, metrics, command="cmd", data=None, report=None)
    assert entry["metrics"]["val"] == {"accuracy": 0.6, "macro_f1": 0.5}
    assert {f["file"] for f in entry["extra_files"]} == {"xgboost.ubj", "logreg.skops", "appearance.npz"}
    assert sel.ship_if_better(geo_only, models, 0.6, log=log.append) is None   # not better than 0.6
    assert "does not beat" in log[-1] and (models / "landmarks" / "appearance.npz").exists()
    assert sel.ship_if_better(geo_only, models, 0.7) == shipped
    assert not (models / "landmarks" / "appearance.npz").exists()   # the new model uses no appearance file
    assert shipped.read_bytes() == geo_only.read_bytes()
    assert artifacts.read_manifest(models)["models"]["landmarks"]["metrics"]["val"]["accuracy"] == 0.6
