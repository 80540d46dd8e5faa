"""Shipping forms of a CNN: flip TTA inside the graph (saved and reloaded) and the ONNX export, which must
match Keras within 1e-4 and run without TensorFlow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx", reason="the ONNX export needs tf2onnx (pip install -e \".[test]\")")

from fer_hybrid.cnn.export import export_onnx, with_flip_tta  # noqa: E402
from fer_hybrid.onnx_model import OnnxPredictor  # noqa: E402
from fer_hybrid.predictors import ArtifactError, KerasPredictor, load_keras_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cnn.keras"
FACES = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    base = load_keras_model(TINY)
    flip = with_flip_tta(base, "tiny_flip")
    flip.save(d / "tiny_flip.keras")
    return base, load_keras_model(d / "tiny_flip.keras"), export_onnx(flip, d / "tiny_flip.onnx")


def test_flip_in_graph_is_the_mean_of_face_and_mirror(exported):
    base, flip, _ = exported
    x = FACES.astype(np.float32)[..., None]
    want = (np.asarray(base(x)) + np.asarray(base(x[:, :, ::-1]))) / 2
    got = KerasPredictor(flip, "tiny_flip").predict_proba(FACES)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    # a mirrored face gets the same answer: the flip TTA is symmetric
    np.testing.assert_allclose(KerasPredictor(flip, "t").predict_proba(FACES[:, :, ::-1].copy()), got, atol=1e-5)


def test_onnx_matches_keras(exported):
    _, flip, onnx_path = exported
    p = OnnxPredictor(onnx_path, "tiny_flip")
    assert p.input_kind == "crops" and p.input_hw == (48, 48)
    np.testing.assert_allclose(p.predict_proba(FACES), KerasPredictor(flip, "k").predict_proba(FACES), atol=1e-4)
    assert p.predict_proba(FACES[:0]).shape == (0, 5)
    assert not list(onnx_path.parent.glob(".*tmp*"))  # the atomic writer left no temp file


def test_onnx_runtime_does_not_import_tensorflow(exported):
    _, _, onnx_path = exported
    code = (f"import sys, numpy as np; from fer_hybrid.onnx_model import OnnxPredictor; "
            f"p = OnnxPredictor({str(onnx_path)!r}, 'x'); p.predict_proba(np.zeros((1, 48, 48), np.uint8)); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_corrupt_onnx_is_an_artifact_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot load ONNX model"):
        OnnxPredictor(bad, "bad")


def test_onnx_threads_follow_the_environment_then_the_default(exported, monkeypatch):
    _, _, onnx_path = exported
    from fer_hybrid import keras_io

    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS", raising=False)
    monkeypatch.setattr(keras_io, "usable_cores", lambda: 8)
    assert OnnxPredictor(onnx_path, "x").session.get_session_options().intra_op_num_threads == 2
    monkeypatch.setattr(keras_io, "usable_cores", lambda: 1)
    assert OnnxPredictor(onnx_path, "x").session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")  # what the CLIs' --tf-threads sets
    assert OnnxPredictor(onnx_path, "x").session.get_session_options().intra_op_num_threads == 3
    assert OnnxPredictor(onnx_path, "x", threads=1).session.get_session_options().intra_op_num_threads == 1


def _export_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_exp_export_onnx", ROOT / "experiments" / "export_onnx.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


@pytest.mark.parametrize("default_val, made", [(0.99, False), (0.0, True)])
def test_make_default_records_its_decision_and_exits_1_on_refusal(default_val, made, tmp_path, monkeypatch,
                                                                   sample_tar, capsys):
    import hashlib
    import json
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(TINY, models / "tiny.keras")
    entry = {"kind": "cnn", "loader": "keras", "tta": "flip", "file": "tiny.keras",
             "sha256": hashlib.sha256(TINY.read_bytes()).hexdigest(), "metrics": {"val": {"accuracy": 0.2}}}
    (models / "manifest.json").write_text(json.dumps({"default": "d", "models": {
        "tiny": entry, "d": {**entry, "metrics": {"val": {"accuracy": default_val}}}}}))
    monkeypatch.setenv("FER_HYBRID_MODELS", str(models))
    rc = _export_script()(["--model", "tiny", "--data", str(sample_tar), "--ship", "--make-default",
                           "--repeats", "1", "--threads", "1", "--reports", str(tmp_path / "reports")])
    report = json.loads((tmp_path / "reports" / "tiny-onnx" / "report.json").read_text())
    manifest = json.loads((models / "manifest.json").read_text())
    assert rc == (0 if made else 1)
    assert report["default_decision"]["made"] is made
    assert report["notes"].startswith("tiny named by --model; batch-1 ms per face")
    assert f"--make-default: {report['default_decision']['reason']}" in report["notes"]
    assert "tiny-onnx" in manifest["models"] and (models / "tiny.onnx").exists()     # the export ships either way
    if made:
        assert manifest["default"] == report["default_decision"]["default"] in ("tiny", "tiny-onnx")
    else:
        assert manifest["default"] == "d" and report["default_decision"]["default"] is None
        assert "does not beat the default d (0.9900)" in capsys.readouterr().out


def test_make_default_without_ship_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        _export_script()(["--make-default"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "error: --make-default needs --ship (only a shipped model can become the default)")
