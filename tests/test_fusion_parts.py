"""fer_hybrid.fusion_parts / evaluation.fusion_report and the library pieces experiments/hybrid.py and ship_ensemble.py call:
file resolution, cached CNN and landmark parts (cache names kept from the experiment's history), the choices on
val, the fusion variants and their reports, shipping (synthetic arrays, the 8-unit fixture CNN, a tiny landmark
ensemble)."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import fusion as fz
from fer_hybrid import fusion_parts as fp
from fer_hybrid.errors import ArtifactError, ArtifactMissingError
from fer_hybrid.hybrid import CNNEnsemblePredictor, load_cnn_ensemble_predictor, save_cnn_ensemble, ship_cnn_ensemble

import test_hybrid

DATA = Path(__file__).parent / "data"
TINY_CNN = DATA / "tiny_cnn.keras"
K = 5
models_root = test_hybrid.models_root  # fixture: the tiny CNN as vggbn.keras + a tiny landmark ensemble
tiny_keras = test_hybrid.tiny_keras    # fixture: the tiny CNN loaded
soft = test_hybrid.soft                # rows with ``conf`` on class y, the rest spread evenly


# ------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------
def test_cnn_file_looks_in_models_then_checkpoints_and_names_the_training_command(tmp_path):
    models, ckpt = tmp_path / "models", tmp_path / "checkpoints"
    (ckpt / "run").mkdir(parents=True)
    models.mkdir()
    (models / "a.keras").touch()
    (ckpt / "run" / "final.keras").touch()
    (ckpt / "a").mkdir()
    (ckpt / "a" / "final.keras").touch()
    assert fp.cnn_file("a", models, ckpt, "unused") == models / "a.keras"   # the shipped file first
    assert fp.cnn_file("run", models, ckpt, "unused") == ckpt / "run" / "final.keras"
    assert fp.cnn_file(str(models / "a.keras"), tmp_path, tmp_path, "unused") == models / "a.keras"
    with pytest.raises(ArtifactMissingError, match=r"CNN 'b' is not trained yet \(no .*b\.keras\); train it with "
                                                   r"`python train\.py --ship`"):
        fp.cnn_file("b", models, ckpt, "python train.py --ship")
    with pytest.raises(FileNotFoundError, match="CNN file .*gone.keras not found"):
        fp.cnn_file(str(tmp_path / "gone.keras"), models, ckpt, "unused")


def test_landmark_file_names_the_command_when_missing(tmp_path):
    with pytest.raises(ArtifactMissingError, match="python experiments/landmarks.py"):
        fp.landmark_file(tmp_path)
    (tmp_path / "landmarks").mkdir()
    (tmp_path / "landmarks" / "ensemble.json").write_text("{}")
    assert fp.landmark_file(tmp_path) == tmp_path / "landmarks" / "ensemble.json"


def test_onnx_twin_only_for_an_agreeing_export_of_the_single_cnn(tmp_path):
    from fer_hybrid import artifacts

    repo, models = tmp_path, tmp_path / "models"
    models.mkdir()
    (models / "net.onnx").write_bytes(b"onnx")
    report = repo / "experiments" / "reports" / "net-onnx" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps({"exported_from": "net", "onnx": {"agrees": True}}))
    artifacts.update_manifest("net-onnx", models / "net.onnx", root=models, command="x", data=None, metrics={},
                              weights=None, report="experiments/reports/net-onnx/report.json")
    assert fp.onnx_twin(None, "net", ["net"], models, repo) is None
    assert fp.onnx_twin("net-onnx", "net", ["net"], models, repo) == models / "net.onnx"
    for name, cnn, members in (("net-onnx", "net", ["net", "other"]), ("net-onnx", "other", ["other"]),
                               ("unknown", "net", ["net"])):
        with pytest.raises(ArtifactMissingError, match=f"--cnn-onnx {name} is not an agreeing ONNX export of {cnn} "
                                                       f".*export_onnx.py --model {cnn} --ship"):
            fp.onnx_twin(name, cnn, members, models, repo)
    report.write_text(json.dumps({"exported_from": "net", "onnx": {"agrees": False}}))
    with pytest.raises(ArtifactMissingError, match="not an agreeing"):
        fp.onnx_twin("net-onnx", "net", ["net"], models, repo)


# ------------------------------------------------------------------------------------------
# parts
# ------------------------------------------------------------------------------------------
def test_predict_policies_matches_predict_under_each_policy(tiny_keras, sample_data):
    x = sample_data.test.x
    ens = CNNEnsemblePredictor([tiny_keras, tiny_keras], weights=[3, 1], batch_size=4)
    out = ens.predict_policies(x, ["none", "flip", "flip-scale"])
    assert list(out) == ["none", "flip", "flip-scale"]
    for policy, (p, e) in out.items():
        p_ref, e_ref = CNNEnsemblePredictor([tiny_keras, tiny_keras], tta=policy).predict(x)
        assert p.dtype == np.float64 and e.dtype == np.float32 and p.shape == (len(x), K) and e.shape == (len(x), 16)
        np.testing.assert_allclose(p, p_ref, atol=1e-6)
        np.testing.assert_allclose(e, e_ref, atol=1e-5)
    assert not np.allclose(out["none"][0], out["flip"][0])
    empty = ens.predict_policies(x[:0], ["flip"])["flip"]
    assert empty[0].shape == (0, K) and empty[1].shape == (0, 16)
    with pytest.raises(ValueError, match="unknown TTA policy 'bogus'"):
        ens.predict_policies(x, ["bogus"])


def test_cnn_parts_are_per_policy_averages_cached_under_the_historical_name(tiny_keras, sample_data, monkeypatch):
    from fer_hybrid.data import cache_dir
    from fer_hybrid.safe_io import file_sha256

    parts = fp.cnn_parts(TINY_CNN, sample_data, ["none", "flip"], progress=False)
    assert set(parts) == {f"{s}_{k}@{p}" for s in fp.SPLITS for k in "pe" for p in ("none", "flip")}
    for s in fp.SPLITS:
        x = sample_data.split(s).x
        for policy in ("none", "flip"):
            p, e = CNNEnsemblePredictor([tiny_keras], tta=policy).predict(x)
            np.testing.assert_allclose(parts[f"{s}_p@{policy}"], p, atol=1e-6)
            np.testing.assert_allclose(parts[f"{s}_e@{policy}"], e, atol=1e-5)
            assert parts[f"{s}_p@{policy}"].dtype == np.float64 and parts[f"{s}_e@{policy}"].dtype == np.float32
    key = hashlib.sha256(b"none,flip").hexdigest()[:8]
    name = f"hybrid-cnn-{file_sha256(TINY_CNN)[:20]}-{sample_data.sha256[:12]}-tta{key}.npz"
    assert (cache_dir() / name).exists()
    monkeypatch.setattr(CNNEnsemblePredictor, "from_files", lambda *a, **k: pytest.fail("must read the cache"))
    again = fp.cnn_parts(TINY_CNN, sample_data, ["none", "flip"], progress=False)
    for k, v in parts.items():
        np.testing.assert_array_equal(again[k], v)


def test_cnn_parts_of_some_splits_are_cached_apart_and_combine_on_those_splits(tiny_keras, sample_data):
    from fer_hybrid.data import cache_dir
    from fer_hybrid.safe_io import file_sha256

    parts = fp.cnn_parts(TINY_CNN, sample_data, ["flip"], progress=False, splits=("val", "test"))
    assert set(parts) == {f"{s}_{k}@flip" for s in ("val", "test") for k in "pe"}
    p, _ = CNNEnsemblePredictor([tiny_keras], tta="flip").predict(sample_data.val.x)
    np.testing.assert_allclose(parts["val_p@flip"], p, atol=1e-6)
    key = hashlib.sha256(b"flip").hexdigest()[:8]
    assert (cache_dir() / f"hybrid-cnn-{file_sha256(TINY_CNN)[:20]}-{sample_data.sha256[:12]}-tta{key}-val+test.npz"
            ).exists()
    out = fp.combine_cnns([parts, parts], "flip", [1, 3])
    assert set(out) == {"val", "test"} and out["val"][0].shape == (len(sample_data.val), K)
    assert fp.choose_cnn({"a": parts}, ["a"], ["flip"], sample_data.val.y) == ("flip", {"a": 1.0})
    for bad in ((), ("train", "dev")):
        with pytest.raises(ValueError, match="splits must be among"):
            fp.cnn_parts(TINY_CNN, sample_data, ["flip"], progress=False, splits=bad)


def test_landmark_parts_are_what_the_landmark_predictor_computes(models_root, sample_tar, sample_data):
    from fer_hybrid.data import cache_dir
    from fer_hybrid.hybrid import landmark_features
    from fer_hybrid.safe_io import file_sha256

    lm_json = models_root / "landmarks" / "ensemble.json"
    lm, parts = fp.landmark_parts(lm_json, sample_tar, sample_data, n_jobs=1)
    assert set(parts) == {f"{s}_{k}" for s in fp.SPLITS for k in "pf"}
    for s in fp.SPLITS:
        p, pts = lm.predict(sample_data.split(s).x)
        np.testing.assert_allclose(parts[f"{s}_p"], p, atol=1e-6)
        np.testing.assert_allclose(parts[f"{s}_f"], landmark_features(lm, pts), rtol=1e-5, atol=1e-5)
        assert parts[f"{s}_f"].dtype == np.float32 and len(parts[f"{s}_p"]) == len(sample_data.split(s))
    assert (cache_dir() / f"hybrid-lm-{file_sha256(lm_json)[:20]}-{sample_data.sha256[:12]}.npz").exists()


# ------------------------------------------------------------------------------------------
# choices on val
# ------------------------------------------------------------------------------------------
def fake_parts(p_by_policy, d=2, seed=0):
    """cnn_parts-like dict: the same probabilities on every split, random embeddings of width d."""
    rng = np.random.default_rng(seed)
    out = {}
    for policy, p in p_by_policy.items():
        for s in fp.SPLITS:
            out[f"{s}_p@{policy}"] = np.asarray(p, np.float64)
            out[f"{s}_e@{policy}"] = rng.normal(size=(len(p), d)).astype(np.float32)
    return out


def test_combine_cnns_weights_probabilities_and_concatenates_embeddings():
    a = fake_parts({"flip": soft(np.array([0, 1]), 0.9)}, d=2, seed=1)
    b = fake_parts({"flip": soft(np.array([2, 2]), 0.5)}, d=3, seed=2)
    out = fp.combine_cnns([a, b], "flip", [3, 1])
    assert set(out) == set(fp.SPLITS)
    p, e = out["val"]
    np.testing.assert_allclose(p, 0.75 * a["val_p@flip"] + 0.25 * b["val_p@flip"])
    assert e.dtype == np.float64 and e.shape == (2, 5)
    np.testing.assert_array_equal(e, np.concatenate([a["val_e@flip"], b["val_e@flip"]], axis=1))


def test_choose_cnn_picks_the_policy_and_drops_a_useless_member():
    y = np.arange(100) % K
    good, bad = soft(y, 0.6), soft((y + 1) % K, 0.9)
    half = np.where((np.arange(100) < 50)[:, None], good, bad)
    parts = {"a": fake_parts({"none": half, "flip": good}), "b": fake_parts({"none": bad, "flip": bad})}
    assert fp.choose_cnn(parts, ["a", "b"], ["none", "flip"], y) == ("flip", {"a": 1.0})
    assert fp.choose_cnn(parts, ["b"], ["none", "flip"], y) == ("none", {"b": 1.0})  # a tie: the first policy
    with pytest.raises(ValueError, match="at least one TTA policy"):
        fp.choose_cnn(parts, ["a"], [], y)


def synthetic_inputs(n=300, seed=0):
    """(y, combine_cnns-like CNN part, landmark_parts-like dict): the CNN's probabilities are right (0.5) on the
    first half and confidently wrong (0.9) on the second, the landmark probabilities the other way round, so no
    single late-fusion weight serves both halves; the landmark features are a noisy one-hot of the label; row 0
    has no landmarks."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    first = (np.arange(n) < n // 2)[:, None]
    wrong = (y + 1) % K
    cnn_p = np.where(first, soft(y, 0.5), soft(wrong, 0.9))
    lm_p = np.where(first, soft(wrong, 0.9), soft(y, 0.5))
    lm_p[0] = np.nan
    emb = rng.normal(0, 1, (n, K))
    feats = np.eye(K)[y] + rng.normal(0, 0.1, (n, K))
    feats[0] = np.nan
    cnn = {s: (cnn_p, emb) for s in fp.SPLITS}
    lm = {f"{s}_{k}": v for s in fp.SPLITS for k, v in (("p", lm_p), ("f", feats.astype(np.float32)))}
    return y, cnn, lm


def test_fit_variants_fits_every_fusion_and_choose_variant_keeps_the_best():
    y, cnn, lm = synthetic_inputs()
    variants = fp.fit_variants("hybrid", {"a": 0.75, "b": 0.25}, "flip", cnn, lm, y, y, heads=["logreg"], n_jobs=1)
    assert [v.name for v in variants] == ["hybrid-late", "hybrid-stacking", "hybrid-feature-logreg"]
    late, stacking, feature = variants
    assert isinstance(late.fuser, fz.LateFusion) and isinstance(stacking.fuser, fz.StackingFusion)
    assert late.members == ["a", "b"] and late.describe() == "a+b (weights [0.75, 0.25], TTA flip)"
    assert late.val_accuracy == pytest.approx(150 / 299)           # one weight serves one half (rows with landmarks)
    assert stacking.val_accuracy == 1.0        # per-class weights on both log-probabilities learn whom to trust
    assert feature.val_accuracy > 0.95 and feature.needs_embedding and not late.needs_embedding
    assert fp.choose_variant(variants) is stacking                  # the best, or the first of a tie with feature
    assert fp.choose_variant([late, feature]) is feature
    assert fp.choose_variant([late, late]) is late
    proba = feature.proba()
    assert set(proba) == set(fp.SPLITS) and proba["val"].dtype == np.float32
    np.testing.assert_allclose(proba["val"][0], cnn["val"][0][0], atol=1e-6)  # no landmarks: the CNN answers
    assert feature.fallback() == {"train": 1, "val": 1, "test": 1}
    assert late.cnn_accuracy({"val": y, "test": y}) == {"val": 0.5, "test": 0.5}
    assert fz.head_params(late.fuser) == 1
    assert fz.head_params(stacking.fuser) == K * 2 * K + K           # logistic regression on 2k log-probabilities
    assert fz.head_params(feature.fuser) == K * 2 * K + K            # on [embedding (5), features (5)]
    assert stacking.fuser.selection_note == "out-of-fold (5-fold CV inside val)"
    with pytest.raises(ValueError, match="unknown head 'tree'"):
        fp.fit_variants("hybrid", {"a": 1.0}, "none", cnn, lm, y, y, heads=["tree"], n_jobs=1)


def test_head_params_counts_the_leaves_of_a_boosted_head():
    y, cnn, lm = synthetic_inputs(200)
    X = fp.fusion_inputs(cnn, lm)
    grid = [dict(max_iter=3, max_leaf_nodes=4, early_stopping=False)]
    hgb = fz.FeatureFusion(head="hgb", grid=grid, n_jobs=1).fit(X["train"], y, X["val"], y)
    assert K * 1 * 2 <= fz.head_params(hgb) <= K * 3 * 4       # 3 rounds x 5 classes of trees, 2..4 leaves each


# ------------------------------------------------------------------------------------------
# shipping and reports
# ------------------------------------------------------------------------------------------
def test_ship_hybrid_refuses_a_cnn_outside_the_models_folder(tmp_path):
    y, cnn, lm = synthetic_inputs(100)
    (variant, *_) = fp.fit_variants("hybrid", {"a": 1.0}, "none", cnn, lm, y, y, heads=[], n_jobs=1)
    with pytest.raises(ArtifactMissingError, match=r"elsewhere.*a\.keras is not in .*; ship the CNN first"):
        fp.ship_hybrid(variant, {"a": tmp_path / "elsewhere" / "a.keras"}, None, tmp_path / "lm.json",
                       tmp_path / "models", {}, "r.json", "cmd")


def test_reports_and_shipping_of_a_variant(models_root, sample_tar, sample_data, tmp_path):
    from fer_hybrid.artifacts import read_manifest
    from fer_hybrid.evaluation.fusion_report import Reporter
    from fer_hybrid.predictors import load_predictor
    from fer_hybrid.reports import read_report

    root = tmp_path / "models"
    shutil.copytree(models_root, root, ignore=shutil.ignore_patterns("hybrid"))
    files, lm_json = {"vggbn": root / "vggbn.keras"}, root / "landmarks" / "ensemble.json"
    parts = {"vggbn": fp.cnn_parts(files["vggbn"], sample_data, ["none"], progress=False)}
    lm, lm_parts = fp.landmark_parts(lm_json, sample_tar, sample_data, n_jobs=1)
    cnn = fp.combine_cnns([parts["vggbn"]], "none")
    (late,) = [v for v in fp.fit_variants("hybrid", {"vggbn": 1.0}, "none", cnn, lm_parts, sample_data.train.y,
                                          sample_data.val.y, heads=[], n_jobs=1) if v.name == "hybrid-late"]
    rep = Reporter(tmp_path / "reports", sample_data, None, weights=None, command="python test", repo_root=tmp_path)
    rep.variant(late, files, lm, lm_json, root, chosen=True)
    report = read_report(tmp_path / "reports" / "hybrid-late" / "report.json")
    m = report["metrics"]
    fused = late.proba()
    assert m["val"]["accuracy"] == pytest.approx(fp.accuracy(fused["val"], sample_data.val.y))
    assert report["chosen"] is True and report["kind"] == "hybrid" and report["cnn_files"] == ["vggbn.keras"]
    assert report["selection_note"] == "val accuracy at the weight chosen on val"
    assert report["artifact"]["path"] == "reports/hybrid-late/hybrid.json"
    for s in ("val", "test"):
        cnn_acc = fp.accuracy(cnn[s][0], sample_data.split(s).y)
        assert report["cnn_part_accuracy"][s] == pytest.approx(cnn_acc)
        assert report["gain_over_cnn"][s] == pytest.approx(m[s]["accuracy"] - cnn_acc)
    ship = fp.ship_hybrid(late, files, lm, lm_json, root, report, "reports/hybrid-late/report.json", "cmd")
    assert ship == root / "hybrid" / "hybrid.json"
    entry = read_manifest(root)["models"]["hybrid"]
    assert entry["metrics"]["test"]["accuracy"] == m["test"]["accuracy"] and entry["command"] == "cmd"
    assert entry["ms_per_face"] == report["ms_per_face"] and entry["report"] == "reports/hybrid-late/report.json"
    np.testing.assert_allclose(load_predictor("hybrid", root=root).predict_proba(sample_data.test.x), fused["test"],
                               atol=1e-5)


def test_cnn_ensemble_report_and_its_shipped_descriptor(tiny_keras, sample_data, tmp_path):
    from fer_hybrid.evaluation.fusion_report import Reporter
    from fer_hybrid.reports import read_report

    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(TINY_CNN, root / "a.keras")
    shutil.copy(TINY_CNN, root / "b.keras")
    files = {"a": root / "a.keras", "b": root / "b.keras"}
    parts = {m: fp.cnn_parts(f, sample_data, ["flip"], progress=False) for m, f in files.items()}
    cnn = fp.combine_cnns([parts["a"], parts["b"]], "flip", [0.6, 0.4])
    rep = Reporter(tmp_path / "reports", sample_data, None, weights=None, command="python test")
    rep.cnn_ensemble({"a": 0.6, "b": 0.4}, "flip", cnn, files, root)
    folder = tmp_path / "reports" / "cnn-ensemble-a+b"
    report = read_report(folder / "report.json")
    assert report["kind"] == "cnn" and report["member_weights"] == [0.6, 0.4] and report["tta"] == "flip"
    assert report["backbone"] == "weighted average of a, b (weights [0.6, 0.4], TTA flip, both chosen on val)"
    assert report["metrics"]["test"]["accuracy"] == pytest.approx(fp.accuracy(cnn["test"][0], sample_data.test.y))
    # shipping the evaluated descriptor: files relative to models/, only the tta field, members checked
    desc = json.loads((folder / "ensemble.json").read_text())
    desc["cnn"]["flip_tta"] = True      # a legacy field is dropped on the way
    (folder / "ensemble.json").write_text(json.dumps(desc))
    path = ship_cnn_ensemble(folder / "ensemble.json", root)
    shipped = json.loads(path.read_text())
    assert path == root / "ensemble" / "ensemble.json" and shipped["models_root"] == ".."
    assert shipped["cnn"]["files"] == ["a.keras", "b.keras"] and "flip_tta" not in shipped["cnn"]
    assert shipped["members"] == ["a", "b"]
    np.testing.assert_allclose(load_cnn_ensemble_predictor(path).predict_proba(sample_data.test.x),
                               cnn["test"][0], atol=1e-6)
    (root / "b.keras").write_bytes(b"retrained")
    with pytest.raises(ArtifactError, match="b.keras does not match its sha256 .*re-run experiments/hybrid.py"):
        ship_cnn_ensemble(folder / "ensemble.json", root)
    (root / "b.keras").unlink()
    with pytest.raises(ArtifactError, match="b.keras is missing"):
        ship_cnn_ensemble(folder / "ensemble.json", root)


def test_ship_cnn_ensemble_refuses_a_malformed_descriptor(tmp_path):
    (tmp_path / "ensemble.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ArtifactError, match="not a fer_hybrid.cnn_ensemble"):
        ship_cnn_ensemble(tmp_path / "ensemble.json", tmp_path)
    assert not (tmp_path / "ensemble").exists()


def test_save_then_ship_round_trip_keeps_weights(tiny_keras, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(TINY_CNN, root / "a.keras")
    ens = CNNEnsemblePredictor.from_files([root / "a.keras", root / "a.keras"], tta="flip", weights=[1, 3])
    src = save_cnn_ensemble(ens, tmp_path / "reports" / "x" / "ensemble.json", models_root=root)
    shipped = json.loads(ship_cnn_ensemble(src, root, name="other").read_text())
    assert shipped["cnn"]["weights"] == [0.25, 0.75] and shipped["cnn"]["tta"] == "flip"
