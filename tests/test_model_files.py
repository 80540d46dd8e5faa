"""Model files never run code on load; every file is checked against the manifest's sha256; malformed
manifests and descriptors name the file and the field; models_dir() resolution."""
from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import artifacts, predictors as pr, safe_io
from fer_hybrid.errors import ArtifactError, ArtifactMissingError

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
TINY = Path(__file__).parent / "data" / "tiny_cnn.keras"


class _WritesMarker:
    """Unpickling this calls os.system-like code: it writes the marker file (the attack a pickle allows)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def crafted_pickle(path: Path, marker: Path) -> Path:
    """A pickle (joblib/pkl by name) whose unpickling writes ``marker``."""
    path.write_bytes(pickle.dumps(_WritesMarker(marker)))
    return path


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "CODE_RAN"
    # the crafted file really is an exploit: plain pickle.loads would run it
    pickle.loads(pickle.dumps(_WritesMarker(m)))
    assert m.exists()
    m.unlink()
    yield m
    assert not m.exists(), "loading a model executed code from its file"


@pytest.fixture
def landmark_folder(tmp_path):
    """A copy of the shipped landmark ensemble with its own manifest entry (so load_predictor works)."""
    root = tmp_path / "models"
    shutil.copytree(MODELS / "landmarks", root / "landmarks")
    entry = artifacts.read_manifest(MODELS)["models"]["landmarks"]
    (root / "manifest.json").write_text(json.dumps({"models": {"landmarks": entry}}))
    return root


def _set_member(root: Path, name: str, file: str) -> None:
    """Point member ``name`` at ``file`` with its true sha256, and re-record the descriptor's sha256 in the
    manifest: only the format can refuse it, not a hash."""
    desc_path = root / "landmarks" / "ensemble.json"
    desc = json.loads(desc_path.read_text())
    for m in desc["members"]:
        if m["name"] == name:
            m["file"], m["sha256"] = file, safe_io.file_sha256(root / "landmarks" / file)
    desc_path.write_text(json.dumps(desc))
    manifest = json.loads((root / "manifest.json").read_text())
    e = manifest["models"]["landmarks"]
    e["sha256"], e["extra_files"] = safe_io.file_sha256(desc_path), []
    (root / "manifest.json").write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------------------------
# crafted pickles are refused without being executed
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hgb.joblib", "hgb.pkl"])
def test_crafted_pickle_member_is_refused_unread(landmark_folder, marker, name):
    crafted_pickle(landmark_folder / "landmarks" / name, marker)
    _set_member(landmark_folder, "hgb", name)
    with pytest.raises(ArtifactError, match=f"{name} is a pickle file, which can run code when loaded"):
        pr.load_predictor("landmarks", landmark_folder)


def test_crafted_pickle_renamed_skops_is_refused_unread(landmark_folder, marker):
    crafted_pickle(landmark_folder / "landmarks" / "hgb.skops", marker)
    _set_member(landmark_folder, "hgb", "hgb.skops")
    with pytest.raises(ArtifactError, match="hgb.skops is not a readable skops file"):
        pr.load_predictor("landmarks", landmark_folder)


def test_crafted_pickle_as_a_model_file_is_refused_unread(tmp_path, marker):
    crafted_pickle(tmp_path / "evil.pkl", marker)
    crafted_pickle(tmp_path / "vggbn.keras", marker)
    entry = {"loader": "keras", "file": "evil.pkl", "sha256": safe_io.file_sha256(tmp_path / "evil.pkl")}
    vggbn = {"loader": "keras", "file": "vggbn.keras", "sha256": safe_io.file_sha256(tmp_path / "vggbn.keras")}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {"evil": entry, "vggbn": vggbn}}))
    with pytest.raises(ArtifactError, match="evil.pkl is a pickle file"):
        pr.load_predictor("evil", tmp_path)
    with pytest.raises(ArtifactError, match="not a valid .keras"):
        pr.load_predictor("vggbn", tmp_path)


def test_crafted_pickle_fusion_head_is_refused_unread(tmp_path, marker):
    root = tmp_path / "models"
    (root / "hybrid").mkdir(parents=True)
    shutil.copy(MODELS / "landmarks" / "ensemble.json", root / "lm.json")
    head = crafted_pickle(root / "hybrid" / "hybrid-fusion.joblib", marker)
    desc = json.loads((MODELS / "hybrid" / "hybrid.json").read_text())
    desc["landmarks"] = {"file": "lm.json", "sha256": safe_io.file_sha256(root / "lm.json")}
    desc["fusion"] = {"method": "stacking", "C": 1.0, "file": head.name, "sha256": safe_io.file_sha256(head)}
    (root / "hybrid" / "hybrid.json").write_text(json.dumps(desc))
    from fer_hybrid.hybrid import load_hybrid_predictor

    with pytest.raises(ArtifactError, match="hybrid-fusion.joblib is a pickle file"):
        load_hybrid_predictor(root / "hybrid" / "hybrid.json")


class _Evil:
    """A class outside the trusted list; skops would rebuild it with __setstate__, which writes the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __setstate__(self, state):
        Path(state["marker"]).write_text("code ran")


def test_skops_file_with_an_untrusted_type_is_refused_naming_it(tmp_path, marker):
    import skops.io as sio

    path = tmp_path / "evil.skops"
    sio.dump({"model": _Evil(marker)}, path)
    with pytest.raises(ArtifactError, match=r"evil.skops names untrusted types .*test_model_files._Evil"):
        safe_io.load_sklearn(path)


def test_skops_round_trip_and_refusals(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = safe_io.save_sklearn(model, tmp_path / "m.skops")
    np.testing.assert_array_equal(safe_io.load_sklearn(path).predict_proba(X), model.predict_proba(X))
    with pytest.raises(ValueError, match="holds types load_sklearn would refuse: sklearn.tree"):
        safe_io.save_sklearn(DecisionTreeClassifier().fit(X, y), tmp_path / "tree.skops")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skops"]  # nothing half-written left
    with pytest.raises(ValueError, match="saved as .skops"):
        safe_io.save_sklearn(model, tmp_path / "m.joblib")
    (tmp_path / "t.skops").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="t.skops is not a readable skops file"):
        safe_io.load_sklearn(tmp_path / "t.skops")


def test_keras_loads_in_safe_mode_only(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Lambda(lambda t: t * 2.0),
                              keras.layers.Flatten(), keras.layers.Dense(5)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ArtifactError, match="cannot load model file .*lambda.keras"):
        pr.load_keras_model(tmp_path / "lambda.keras")
    shutil.copy(TINY, tmp_path / "tiny.h5")
    with pytest.raises(ArtifactError, match="only .keras files are loaded"):
        pr.load_keras_model(tmp_path / "tiny.h5")


# ------------------------------------------------------------------------------------------------
# sha256 against the manifest, cached
# ------------------------------------------------------------------------------------------------
def _two_cnn_folder(root: Path) -> Path:
    import keras

    root.mkdir()
    shutil.copy(TINY, root / "vggbn.keras")
    other = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(5, activation="softmax")])
    other.save(root / "baseline.keras")
    models = {n: {"loader": "keras", "file": f"{n}.keras", "sha256": safe_io.file_sha256(root / f"{n}.keras")}
              for n in ("vggbn", "baseline")}
    (root / "manifest.json").write_text(json.dumps({"default": "vggbn", "models": models}))
    return root


def test_a_swapped_keras_file_is_refused(tmp_path):
    root = _two_cnn_folder(tmp_path / "models")
    assert pr.load_predictor("vggbn", root).name == "vggbn"
    shutil.copy(root / "baseline.keras", root / "vggbn.keras")   # another model's file under vggbn's name
    with pytest.raises(ArtifactError, match=r"vggbn.keras: its sha256 \(.*\) does not match the sha256 in "
                                            r".*models/manifest.json"):
        pr.load_predictor("vggbn", root)


def test_shipped_entry_without_sha256_and_missing_extra_file_are_refused(landmark_folder):
    manifest = json.loads((landmark_folder / "manifest.json").read_text())
    no_sha = copy.deepcopy(manifest)
    del no_sha["models"]["landmarks"]["sha256"]
    (landmark_folder / "manifest.json").write_text(json.dumps(no_sha))
    with pytest.raises(ArtifactError, match=r"field 'models.landmarks.sha256' is missing"):
        pr.load_predictor("landmarks", landmark_folder)
    (landmark_folder / "manifest.json").write_text(json.dumps(manifest))
    (landmark_folder / "landmarks" / "mlp.skops").unlink()
    with pytest.raises(ArtifactError, match="lists mlp.skops, which is missing"):
        pr.load_predictor("landmarks", landmark_folder)


def test_hash_is_cached_by_path_size_and_mtime(tmp_path, monkeypatch):
    import hashlib

    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(safe_io.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    first = safe_io.file_sha256(f)
    assert safe_io.file_sha256(f) == first == real(b"one").hexdigest() and len(calls) == 1
    f.write_bytes(b"three")                      # new size (and mtime): hashed again
    assert safe_io.file_sha256(f) == real(b"three").hexdigest() and len(calls) == 2
    os.utime(f, ns=(1, 1))                       # same size, other mtime: hashed again
    safe_io.file_sha256(f)
    assert len(calls) == 3


# ------------------------------------------------------------------------------------------------
# manifest.json validation: the file and the field are named
# ------------------------------------------------------------------------------------------------
def _shipped_manifest() -> dict:
    return json.loads((MODELS / "manifest.json").read_text())


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.update(models=[]), "field 'models' must be an object"),
    (lambda m: m["models"].update(vggbn=[1]), "field 'models.vggbn' must be an object"),
    (lambda m: m["models"]["vggbn"].pop("file"), "field 'models.vggbn.file' is missing"),
    (lambda m: m["models"]["vggbn"].update(file=7), "field 'models.vggbn.file' must be a non-empty relative file name, got int"),
    (lambda m: m["models"]["vggbn"].update(file="../../etc/x.keras"), "field 'models.vggbn.file' must be a file name inside"),
    (lambda m: m["models"]["vggbn"].update(sha256="xyz"), "field 'models.vggbn.sha256' must be a sha256"),
    (lambda m: m["models"]["vggbn"].update(loader="pickle"), "field 'models.vggbn.loader' must be one of keras"),
    (lambda m: m["models"]["vggbn"].update(kind=3), "field 'models.vggbn.kind' must be a string"),
    (lambda m: m["models"]["vggbn"].update(bytes=-1), "field 'models.vggbn.bytes' must be a non-negative integer"),
    (lambda m: m["models"]["vggbn"]["metrics"]["test"].update(accuracy=75.0),
     "field 'models.vggbn.metrics.test.accuracy' must be a number in"),
    (lambda m: m["models"]["vggbn"].update(metrics="good"), "field 'models.vggbn.metrics' must be an object"),
    (lambda m: m["models"]["hybrid"].update(tta="flip"), "field 'models.hybrid.tta' applies to the keras loader only"),
    (lambda m: m["models"]["landmarks"]["extra_files"][0].pop("sha256"),
     r"field 'models.landmarks.extra_files\[0\].sha256' must be a sha256"),
    (lambda m: m.update(default="nope"), "field 'default' must be the name of an entry of 'models'"),
    (lambda m: m.update(default=None) or m.pop("models"), "field 'models' must be an object"),
])
def test_malformed_manifest_names_file_and_field(tmp_path, damage, message):
    m = _shipped_manifest()
    damage(m)
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=message) as info:
        pr.load_predictor("vggbn", tmp_path)
    assert str(tmp_path / "manifest.json") in str(info.value)


def test_unreadable_manifest_is_an_artifact_error(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="manifest.json: not readable JSON"):
        pr.list_models(root=tmp_path)


# ------------------------------------------------------------------------------------------------
# hybrid.json / CNN-ensemble descriptor validation
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage, message", [
    (lambda d: d["cnn"].update(flip_tta=True), "field 'cnn.flip_tta' is no longer read"),
    (lambda d: d["cnn"].pop("tta"), "field 'cnn.tta' must be a TTA policy name"),
    (lambda d: d["cnn"].update(files="vggbn.keras"), "field 'cnn.files' must be a non-empty list"),
    (lambda d: d["cnn"].update(files=["evil.pkl"] * 7), "field 'cnn.files' must be a list of .keras files"),
    (lambda d: d["cnn"]["sha256"].pop(), "field 'cnn.sha256' must be a list of 7 sha256"),
    (lambda d: d["cnn"].update(weights=[0] * 7), "field 'cnn.weights' sums to 0; it must sum to > 0"),
    (lambda d: d["cnn"].update(weights=[-1] + [1] * 6), "field 'cnn.weights' must be a list of 7 finite numbers >= 0"),
    (lambda d: d["cnn"].update(weights=["a"] * 7), "field 'cnn.weights' must be a list of 7 finite numbers"),
    (lambda d: d["cnn"].update(embedding_layers=["x"]), "field 'cnn.embedding_layers' must be a list of 7"),
    (lambda d: d.pop("landmarks"), "field 'landmarks' must be an object"),
    (lambda d: d["landmarks"].update(sha256=None), "field 'landmarks.sha256' must be a sha256"),
    (lambda d: d["fusion"].update(method="vote"), "field 'fusion.method' must be one of late, stacking, feature"),
    (lambda d: d["fusion"].update(weight_cnn=1.5), "field 'fusion.weight_cnn' must be a number in"),
    (lambda d: d["fusion"].update(method="stacking", C=1.0), "field 'fusion.file' must be a non-empty relative"),
    (lambda d: d.update(crop_margin=float("nan")), "field 'crop_margin' must be a number in"),
    (lambda d: d.update(classes=5), "field 'classes' must be a non-empty list"),
    (lambda d: d.update(format="fer_hybrid.cnn_ensemble"), "not a fer_hybrid.hybrid v1 descriptor"),
])
def test_malformed_hybrid_descriptor_names_file_and_field(tmp_path, damage, message):
    from fer_hybrid.hybrid import load_hybrid_predictor

    desc = json.loads((MODELS / "hybrid" / "hybrid.json").read_text())
    desc["cnn"] = json.loads((MODELS / "ensemble" / "ensemble.json").read_text())["cnn"]  # 7 CNNs
    assert len(desc["cnn"]["files"]) == 7
    damage(desc)
    path = tmp_path / "hybrid.json"
    path.write_text(json.dumps(desc))
    with pytest.raises(ArtifactError, match=message) as info:
        load_hybrid_predictor(path)
    assert str(path) in str(info.value)


def test_shipped_descriptors_are_valid_and_have_no_compatibility_fields():
    from fer_hybrid.hybrid import validate_hybrid_descriptor
    from fer_hybrid.landmarks.models import validate_descriptor

    hybrid = json.loads((MODELS / "hybrid" / "hybrid.json").read_text())
    validate_hybrid_descriptor(hybrid, "hybrid.json")
    report = json.loads((ROOT / hybrid["report"]).read_text())
    assert "flip_tta" not in hybrid["cnn"] and hybrid["cnn"]["tta"] in report["backbone"]  # the TTA it was scored with
    assert hybrid["fusion"] != {"method": "late", "weight_cnn": 1.0}  # the landmarks carry weight
    assert report["gain_over_cnn"]["val"] > 0  # and it beats its own CNN part on val
    lm = validate_descriptor(json.loads((MODELS / "landmarks" / "ensemble.json").read_text()), "ensemble.json")
    assert {m["file"] for m in lm["members"]} == {"xgboost.ubj", "hgb.skops", "mlp.skops", "logreg.skops"}
    assert not list(MODELS.rglob("*.joblib")) and not list(MODELS.rglob("*.pkl"))
    artifacts.validate_manifest(_shipped_manifest(), "manifest.json")
    for name in pr.list_models(available_only=True):
        pr.check_artifact(name)   # every shipped file matches the manifest


def test_cnn_ensemble_descriptor_validation(tmp_path):
    from fer_hybrid.hybrid import load_cnn_ensemble_predictor

    desc = json.loads((MODELS / "ensemble" / "ensemble.json").read_text())
    desc["cnn"]["weights"] = [0.0] * len(desc["cnn"]["files"])
    (tmp_path / "e.json").write_text(json.dumps(desc))
    with pytest.raises(ArtifactError, match=r"e.json: field 'cnn.weights' sums to 0"):
        load_cnn_ensemble_predictor(tmp_path / "e.json")


# ------------------------------------------------------------------------------------------------
# models_dir(): $FER_HYBRID_MODELS, else the checkout's models/, else package data
# ------------------------------------------------------------------------------------------------
def test_models_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_HYBRID_MODELS", str(tmp_path))
    assert artifacts.models_dir() == tmp_path
    monkeypatch.setenv("FER_HYBRID_MODELS", str(tmp_path / "nope"))
    with pytest.raises(ArtifactMissingError, match=r"FER_HYBRID_MODELS=.*nope: no such folder"):
        artifacts.models_dir()
    with pytest.raises(ArtifactMissingError, match="no such folder"):
        pr.list_models()


def test_models_dir_checkout_then_package_data(tmp_path, monkeypatch):
    monkeypatch.delenv("FER_HYBRID_MODELS", raising=False)
    assert artifacts.models_dir() == MODELS                       # this checkout
    package = tmp_path / "site-packages" / "fer_hybrid"          # a non-editable install: no models/ beside it
    (package / "models").mkdir(parents=True)
    monkeypatch.setattr(artifacts, "_PACKAGE", package)
    assert artifacts.models_dir() == tmp_path / "site-packages" / "models"   # nothing anywhere: names the checkout path
    (package / "models" / "manifest.json").write_text(json.dumps({"default": "x", "models": {"x": {"file": "x.keras"}}}))
    assert artifacts.models_dir() == package / "models"
    assert pr.list_models() == ["x"]
    (tmp_path / "site-packages" / "models").mkdir()
    (tmp_path / "site-packages" / "models" / "manifest.json").write_text(json.dumps({"models": {}}))
    assert artifacts.models_dir() == tmp_path / "site-packages" / "models"   # a checkout beside it wins


def test_installed_package_finds_its_models_from_another_directory(tmp_path):
    """Run from an unrelated cwd with a clean environment: the models folder is still found."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "FER_HYBRID_MODELS"}
    code = "from fer_hybrid import artifacts, predictors; print(artifacts.models_dir()); print(predictors.default_model())"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(MODELS), artifacts.read_manifest(MODELS)["default"]]
