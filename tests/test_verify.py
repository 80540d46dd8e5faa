"""Shipped-model re-evaluation (fer_hybrid.verify): exactly what the registry runs, one-image rule, checks
before evaluating, exit codes 0 / 1 / 2, any working directory."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import verify
from fer_hybrid.artifacts import report_tta
from fer_hybrid.safe_io import file_sha256

TINY = Path(__file__).parent / "data" / "tiny_cnn.keras"


def test_report_tta_reads_the_report_fields():
    assert report_tta({}) == "none"
    assert report_tta({"tta": False}) == "none"
    assert report_tta({"tta": True}) == "flip"
    assert report_tta({"tta": "flip-shift"}) == "flip-shift"
    assert report_tta({"tta": "flip (in the shipped graph)", "evaluated_as_run": True}) == "none"


def test_predict_chunked_and_correct_count():
    calls = []
    verify.predict_chunked(lambda x: calls.append(len(x)) or np.zeros((len(x), 5)), np.zeros((600, 48, 48)), chunk=256)
    assert calls == [256, 256, 88]
    proba = np.array([[0.9, 0.1, 0, 0, 0], [np.nan] * 5, [0, 0, 1.0, 0, 0]])
    assert verify.correct_count(np.array([0, 1, 2]), proba) == 2   # a NaN row (no answer) is wrong
    assert verify.correct_count(np.array([0, 0, 0]), proba) == 1


def test_one_image_rule():
    row = {"n": 10, "correct": 6, "accuracy": 0.6}
    assert verify.compare(row, 0.5, 1)["ok"] and verify.compare(row, 0.5, 1)["delta_images"] == 1
    assert not verify.compare({**row, "correct": 7, "accuracy": 0.7}, 0.5, 1)["ok"]
    assert not verify.compare(row, 0.5, 0)["ok"] and verify.compare(row, 0.6, 0)["ok"]


@pytest.fixture
def tiny_repo(tmp_path, sample_data):
    """repo/models with the tiny CNN shipped as 'tiny' (flip TTA), its recorded test accuracy measured through
    the registry; repo/experiments/reports exists (the default --out goes there)."""
    from fer_hybrid.predictors import KerasPredictor, load_keras_model

    repo = tmp_path / "repo"
    (repo / "experiments" / "reports").mkdir(parents=True)
    root = repo / "models"
    root.mkdir()
    shutil.copy(TINY, root / "tiny.keras")
    p = KerasPredictor(load_keras_model(root / "tiny.keras"), "tiny", tta="flip")
    correct = verify.correct_count(sample_data.test.y, p.predict_proba(sample_data.test.x))
    n = len(sample_data.test.y)
    entry = {"loader": "keras", "tta": "flip", "file": "tiny.keras", "sha256": file_sha256(root / "tiny.keras"),
             "metrics": {"test": {"accuracy": correct / n}}}
    (root / "manifest.json").write_text(json.dumps({"default": "tiny", "models": {"tiny": entry}}))
    return repo, correct, n


def _set_recorded(repo: Path, accuracy: float) -> None:
    path = repo / "models" / "manifest.json"
    m = json.loads(path.read_text())
    m["models"]["tiny"]["metrics"]["test"]["accuracy"] = accuracy
    path.write_text(json.dumps(m))


def test_reproduces_from_another_directory_then_fails_beyond_one_image(tiny_repo, sample_tar, tmp_path,
                                                                       monkeypatch, capsys):
    repo, correct, n = tiny_repo
    monkeypatch.chdir(tmp_path)   # not the repository
    args = ["--models-dir", str(repo / "models"), "--data", str(sample_tar)]
    assert verify.main(args) == 0
    out = repo / "experiments" / "reports" / "verify-shipped"
    (row,) = json.loads((out / "verify.json").read_text())["rows"]
    assert row["model"] == "tiny" and row["tta"] == "flip" and row["delta_images"] == 0 and row["ok"]
    assert row["sha256"] == "ok (1 files)" and "| tiny |" in (out / "verify.md").read_text()
    _set_recorded(repo, (correct + 1) / n if correct < n else (correct - 1) / n)
    assert verify.main(args) == 0                                       # one image off: still reproduced
    _set_recorded(repo, (correct + 2) / n if correct + 2 <= n else (correct - 2) / n)
    assert verify.main(args) == 1                                       # two images off: did not reproduce
    assert "FAIL" in capsys.readouterr().out


def test_cannot_run_exits_2_before_evaluating(tiny_repo, sample_tar, tmp_path, capsys, monkeypatch):
    repo, _, _ = tiny_repo
    root = str(repo / "models")
    evaluated = []
    monkeypatch.setattr(verify, "evaluate", lambda *a, **k: evaluated.append(1))

    def run(*extra):
        code = verify.main(["--models-dir", root, "--data", str(sample_tar), *extra])
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        return code, err

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = run("--out", str(blocker / "out"))                      # --out cannot be created
    assert code == 2 and "--out" in err and "cannot write there" in err
    code, err = run("--models", "nope")
    assert code == 2 and "not shipped: nope" in err and "tiny" in err
    code, err = run("--data", str(tmp_path / "no-data.tar.gz"))
    assert code == 2 and "data:" in err
    shutil.copy(TINY, repo / "models" / "tiny.keras.bak")
    (repo / "models" / "tiny.keras").write_bytes(b"PK\x03\x04 swapped")   # corrupt: sha256 differs
    code, err = run()
    assert code == 2 and "does not match the sha256 in" in err and "manifest.json" in err
    (repo / "models" / "manifest.json").write_text('{"models": []}')
    code, err = run()
    assert code == 2 and "field 'models' must be an object" in err
    (repo / "models" / "manifest.json").unlink()
    code, err = run()
    assert code == 2 and "no manifest.json" in err
    assert evaluated == []


@pytest.mark.slow
def test_every_shipped_model_reproduces_its_recorded_test_accuracy(full_data_path, tmp_path):
    """Full FER2013: every model in models/manifest.json within one image of its recorded test accuracy."""
    assert verify.main(["--data", str(full_data_path), "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "verify.json").read_text())["rows"]
    assert {r["model"] for r in rows} >= {"vggbn", "landmarks", "hybrid"}
