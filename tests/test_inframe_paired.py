"""Paired in-frame comparisons: per-face answers saved by an in-frame run and read back, the paired difference
with its bootstrap interval on known answers, and experiments/inframe_paired.py end to end on made-up runs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.evaluation import inframe_report as R
from fer_hybrid.evaluation import paired as P
from fer_hybrid.evaluation.inframe import Condition

ROOT = Path(__file__).resolve().parents[1]
CONDS = [Condition("default"), Condition("rot+20", rotation=20.0)]


def test_correct_answers_count_a_miss_as_wrong():
    c = P.correct_answers(np.array([[0, 1, -1], [-1, 1, 0]]), np.array([0, 1, 1]))
    assert c.tolist() == [[True, True, False], [False, True, False]]
    with pytest.raises(ValueError, match="do not match 2 labels"):
        P.correct_answers(np.zeros((2, 3), int), np.array([0, 1]))


def test_identical_answers_differ_by_nothing():
    a = np.random.default_rng(0).random((3, 50)) > 0.4
    r = P.paired_difference(a, a.copy(), n_boot=200)
    assert (r["difference"], r["ci_low"], r["ci_high"], r["share_a_better"]) == (0.0, 0.0, 0.0, 0.0)
    assert (r["faces"], r["conditions"], r["conditions_lower"], r["conditions_higher"]) == (50, 3, 0, 0)
    assert r["a"] == pytest.approx(a.mean())


def test_one_face_better_in_every_condition():
    b = np.ones((2, 4), bool)
    b[:, 0] = False
    a = np.ones((2, 4), bool)
    r = P.paired_difference(a, b, n_boot=2000, seed=1)
    assert r["difference"] == pytest.approx(0.25) and r["per_condition"] == pytest.approx([0.25, 0.25])
    assert (r["conditions_lower"], r["conditions_higher"]) == (0, 2)
    assert r["ci_low"] == 0.0 and r["ci_high"] >= 0.5 and 0.5 < r["share_a_better"] < 1.0
    assert P.paired_difference(b, a, n_boot=50)["difference"] == pytest.approx(-0.25)
    np.testing.assert_equal(P.paired_difference(a, b, n_boot=300, seed=4)["ci_high"],
                            P.paired_difference(a, b, n_boot=300, seed=4)["ci_high"])


def test_the_interval_narrows_with_more_faces():
    rng = np.random.default_rng(2)
    small = [rng.random((4, 100)) > 0.3 for _ in range(2)]
    big = [rng.random((4, 2000)) > 0.3 for _ in range(2)]
    w = lambda r: r["ci_high"] - r["ci_low"]  # noqa: E731
    assert w(P.paired_difference(*big, n_boot=500)) < 0.5 * w(P.paired_difference(*small, n_boot=500))


@pytest.mark.parametrize("a, b, message", [
    (np.ones((2, 3), bool), np.ones((2, 4), bool), "one shape"),
    (np.ones((0, 3), bool), np.ones((0, 3), bool), "non-empty"),
])
def test_bad_shapes_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        P.paired_difference(a, b)


def write_run(folder: Path, pred: np.ndarray, y=(0, 1, 2, 3), idx=(5, 9, 11, 40), conds=CONDS):
    folder.mkdir(parents=True)
    return R.save_predictions(folder, {("level", "val"): pred}, {"val": (np.array(y), np.array(idx))}, conds)


def test_predictions_round_trip_and_errors(tmp_path):
    pred = np.array([[0, 1, -1, 3], [0, 0, 2, -1]])
    path = write_run(tmp_path / "inframe-a", pred)
    assert path.name == "predictions.npz" and not list(tmp_path.rglob("*.tmp*"))
    run = R.load_predictions(tmp_path / "inframe-a", "level", "val")
    assert run["pred"].tolist() == pred.tolist() and run["y"].tolist() == [0, 1, 2, 3]
    assert run["indices"].tolist() == [5, 9, 11, 40] and run["conditions"] == ["default", "rot+20"]
    assert P.same_faces(run, run)
    with pytest.raises(KeyError, match="no predictions for variant 'box' on split 'val'; it has level/val"):
        R.load_predictions(tmp_path / "inframe-a", "box", "val")
    with pytest.raises(FileNotFoundError, match="re-run experiments/inframe.py"):
        R.load_predictions(tmp_path / "nowhere", "level", "val")


def paired_script():
    sys.path.insert(0, str(ROOT / "experiments"))
    import inframe_paired

    return inframe_paired


def test_the_script_compares_candidates_with_the_base(tmp_path, capsys):
    write_run(tmp_path / "inframe-base", np.array([[0, 1, 2, 0], [0, 1, -1, 0]]))
    write_run(tmp_path / "inframe-cand", np.array([[0, 1, 2, 3], [0, 1, 2, -1]]))
    out = tmp_path / "out"
    assert paired_script().main(["--candidates", "cand", "--base", "base", "--reports", str(tmp_path),
                                 "--out", str(out), "--n-boot", "300"]) == 0
    rep = json.loads((out / "benchmark.json").read_text())
    row = rep["rows"][0]
    assert (rep["base"], rep["split"], rep["variant"], row["candidate"]) == ("base", "val", "level", "cand")
    assert (row["a"], row["b"], row["difference"]) == (pytest.approx(7 / 8), pytest.approx(5 / 8), pytest.approx(0.25))
    assert row["per_condition"] == pytest.approx([0.25, 0.25])
    assert (out / "differences.png").stat().st_size > 1000
    md = (out / "benchmark.md").read_text()
    assert "| cand | 4 | 0.8750 | 0.6250 | +0.2500 |" in md and "| rot+20 | +0.2500 |" in md
    capsys.readouterr()


def test_the_script_refuses_runs_on_other_faces_and_missing_runs(tmp_path, capsys):
    write_run(tmp_path / "inframe-base", np.zeros((2, 4), int))
    write_run(tmp_path / "inframe-other", np.zeros((2, 4), int), idx=(5, 9, 11, 41))
    script = paired_script()
    assert script.main(["--candidates", "other", "--base", "base", "--reports", str(tmp_path),
                        "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == "error: other and base were not run on the same faces and conditions"
    assert script.main(["--candidates", "gone", "--base", "base", "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "inframe-gone/predictions.npz not found" in err and "\n" not in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "inframe-paired").exists()
