"""evaluate_folder: labels from sub-folders or a file-name pattern, the 5-class map (unmapped labels skipped
and counted), the standard report + per-image CSV, and bad input (one stderr line, exit 2). Runs the tiny
random-weight CNN on the in-the-frame fixture (tests/data/inframe, made by its make_fixture.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from test_realtime import models_dir  # noqa: F401  (tiny CNN registered as vggbn)

from fer_hybrid import evaluate_folder
from fer_hybrid.evaluation.folder import FolderError, collect, parse_map
from fer_hybrid.labels import STUDY_EMOTIONS
from fer_hybrid.reports import read_report

FIXTURE = Path(__file__).parent / "data" / "inframe"
N_LABELLED = 10  # two per study class; plus one neutral image


def run(models_dir, *argv):
    return evaluate_folder.main([*map(str, argv), "--models-dir", str(models_dir), "--quiet"])


def test_subfolders_report_csv_and_skipped_counts(tmp_path, models_dir, capsys):
    out = tmp_path / "report"
    assert run(models_dir, FIXTURE, "--model", "vggbn", "--out", out) == 0
    report = read_report(out / "report.json")
    test = report["metrics"]["test"]
    assert test["n"] == N_LABELLED and report["skipped"] == {"neutral": 1}
    assert 0 <= test["found"] <= N_LABELLED and test["unreadable"] == 0
    assert sum(map(sum, test["confusion_matrix"])) == test["n"] - test["n_abstained"]  # images with an answer
    assert test["n_abstained"] >= test["n"] - test["found"]                           # no face = no answer
    assert set(test["per_class"]) == set(STUDY_EMOTIONS)
    csv = pd.read_csv(out / "predictions.csv")
    assert len(csv) == N_LABELLED
    assert sorted(csv["file"]) == sorted(p.relative_to(FIXTURE).as_posix() for p in FIXTURE.rglob("*.jpg")
                                         if p.parent.name != "neutral")
    assert (csv["label"] == csv["class"]).all()
    assert set(csv["predicted"].dropna()) <= set(STUDY_EMOTIONS)
    assert (out / "report.md").exists() and (out / "confusion.png").exists()
    assert "faces found in" in capsys.readouterr().out


def test_pattern_labels_and_map(tmp_path, models_dir):
    out = tmp_path / "r"
    assert run(models_dir, FIXTURE, "--labels", "pattern", r"^(?P<label>[a-z]+)-", "--map", "neutral=sad",
               "--out", out) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["metrics"]["test"]["n"] == N_LABELLED + 1 and report["skipped"] == {}
    csv = pd.read_csv(out / "predictions.csv")
    assert csv.loc[csv["label"] == "neutral", "class"].tolist() == ["sad"]


def test_collect_counts_what_it_skips(tmp_path):
    root = tmp_path / "set"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("*.py"))
    shutil.copy(next(FIXTURE.rglob("*.jpg")), root / "loose.jpg")       # not in a class folder
    (root / "happy" / "notes.txt").write_text("not an image")
    items, skipped = collect(root, "subfolders", parse_map(None))
    assert len(items) == N_LABELLED
    assert skipped == {"(not in a class sub-folder)": 1, "neutral": 1}
    items, skipped = collect(root, r"^(happy|sad)-", parse_map(None))
    assert {c for _, _, c in items} == {"happy", "sad"} and skipped["(file name does not match the pattern)"] == 8


def test_unreadable_image_is_counted_not_scored(tmp_path, models_dir):
    root = tmp_path / "set"
    shutil.copytree(FIXTURE / "happy", root / "happy")
    (root / "sad").mkdir()
    (root / "sad" / "broken.jpg").write_text("not a jpeg")
    out = tmp_path / "r"
    assert run(models_dir, root, "--out", out) == 0
    test = read_report(out / "report.json")["metrics"]["test"]
    assert test["n"] == 2 and test["unreadable"] == 1


def test_parse_map():
    m = parse_map("Anger=angry, fearful = FEAR")
    assert m["anger"] == "angry" and m["fearful"] == "fear" and m["happy"] == "happy"
    for bad in ("anger", "anger=", "x=neutral"):
        with pytest.raises(FolderError):
            parse_map(bad)


@pytest.mark.parametrize("case", ["missing", "empty", "bad-regex", "bad-map", "nothing-mapped", "bad-labels",
                                  "unknown-model"])
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path, models_dir, capsys):
    (tmp_path / "empty").mkdir()
    argv = {"missing": [tmp_path / "nope"], "empty": [tmp_path / "empty"],
            "bad-regex": [FIXTURE, "--labels", "pattern", "("], "bad-map": [FIXTURE, "--map", "anger"],
            "nothing-mapped": [FIXTURE, "--labels", "pattern", "^(neutral)-"],
            "bad-labels": [FIXTURE, "--labels", "folders"], "unknown-model": [FIXTURE, "--model", "nope"]}[case]
    out = tmp_path / "out"
    assert run(models_dir, *argv, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fer_hybrid.evaluate_folder: error:") and "Traceback" not in err[0]
    assert not out.exists()
