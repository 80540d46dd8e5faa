"""Shipped-model re-evaluation (fer_hybrid.verify): TTA policy from the report, known answers, CLI errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_hybrid import verify


def test_tta_policy_reads_the_report_field():
    assert verify.tta_policy({}) == "none"
    assert verify.tta_policy({"tta": False}) == "none"
    assert verify.tta_policy({"tta": True}) == "flip"
    assert verify.tta_policy({"tta": "flip-shift"}) == "flip-shift"


def _left_half_brightness(faces):
    """A fake classifier: class 0 prob = mean of the left half / 255, class 1 gets the rest."""
    faces = np.asarray(faces, np.float64)
    left = faces[:, :, : faces.shape[2] // 2].mean(axis=(1, 2)) / 255
    out = np.zeros((len(faces), 5))
    out[:, 0], out[:, 1] = left, 1 - left
    return out


def test_predict_with_policy_known_answers():
    faces = np.zeros((600, 48, 48), np.uint8)
    faces[:, :, :24] = 255  # left half white: p0 = 1 plain, 0 mirrored
    np.testing.assert_allclose(verify.predict_with_policy(_left_half_brightness, faces, "none")[:, 0], 1.0)
    np.testing.assert_allclose(verify.predict_with_policy(_left_half_brightness, faces, "flip")[:, 0], 0.5)
    calls = []
    verify.predict_chunked(lambda x: calls.append(len(x)) or np.zeros((len(x), 5)), faces, chunk=256)
    assert calls == [256, 256, 88]


def test_cli_unknown_model_exits_2_listing_the_shipped_ones(tmp_path, capsys):
    root = tmp_path / "models"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps({"models": {"vggbn": {"file": "vggbn.keras"}}}))
    assert verify.main(["--models", "nope", "--models-dir", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not shipped: nope" in err and "vggbn" in err and "Traceback" not in err


@pytest.mark.slow
def test_every_shipped_model_reproduces_its_recorded_test_accuracy(full_data_path, tmp_path):
    """Full FER2013: every model in models/manifest.json within 0.5 points of its recorded test accuracy."""
    assert verify.main(["--data", str(full_data_path), "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "verify.json").read_text())["rows"]
    assert {r["model"] for r in rows} >= {"vggbn", "landmarks"}
