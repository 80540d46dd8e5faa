"""fer_hybrid.evaluation.landmark_report: metrics of the landmark track's members and ensemble, the predictor's
test run and batch-1 timing, and the reports of experiments/landmarks.py (ablation, members, ensemble), on the
tiny synthetic ablation of test_landmarks_selection. Seconds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer_hybrid.evaluate import metrics_from_proba
from fer_hybrid.evaluation import landmark_report as lr
from fer_hybrid.labels import STUDY_EMOTIONS
from fer_hybrid.landmarks import selection as sel
from test_landmarks_selection import TINY, TINY_XGB, Y, _track

META = {"source": "fer2013.tar.gz", "sha256": "abc"}


@pytest.fixture(scope="module")
def fitted():
    """The tiny ablation of test_landmarks_selection: {part: FittedPart} with a learnable appearance signal."""
    app = sel.parse_spec("hog:corners:0.5:1:6")
    track = _track({"hog:corners:0.5:1:6": 3.0})
    return sel.fit_ablation(track, app, track.appearance(app), Y, members=TINY, n_jobs=1)


def _training(fitted) -> dict:
    app = fitted["both"].features.appearance
    screen = [{"spec": sel.spec_of(app), "n_raw": app.n_raw, "val_appearance": 0.5, "val_both": 0.75}]
    return sel.training_record(app, fitted["both"], screen, {"spec": "geometry only", "val_both": 0.25}, 150,
                               "python experiments/landmarks.py", members=TINY, screen_params=TINY_XGB)


def test_split_and_member_metrics_score_every_split_of_every_member(fitted):
    f = fitted["both"]
    got = lr.member_metrics(f.ensemble, f.X, f.X_mirror, Y, STUDY_EMOTIONS)
    assert list(got) == ["xgboost", "logreg", "ensemble"] and all(set(m) == set(Y) for m in got.values())
    want = metrics_from_proba(Y["val"], f.proba()["val"], STUDY_EMOTIONS)
    assert got["ensemble"]["val"]["accuracy"] == pytest.approx(want["accuracy"])
    assert got["ensemble"]["val"]["accuracy"] == pytest.approx(max(f.weights_val_accuracy.values()))
    one = lr.split_metrics({"test": np.eye(5)[Y["test"]]}, Y, STUDY_EMOTIONS)
    assert list(one) == ["test"] and one["test"]["accuracy"] == 1.0


class Predictor:
    """Images -> one-hot of the image's mean (a known answer), counting its calls."""

    def __init__(self):
        self.calls = []

    def predict_proba(self, faces):
        self.calls.append(len(faces))
        return np.eye(5)[np.asarray(faces).reshape(len(faces), -1).mean(1).astype(int) % 5]


def test_predictor_timing_scores_the_faces_then_times_batch_1_calls():
    y = np.arange(10) % 5
    faces = np.repeat(y[:, None, None], 48, 1).repeat(48, 2).astype(np.uint8)
    p = Predictor()
    metrics, seconds, timing = lr.predictor_timing(p, faces, y, STUDY_EMOTIONS, repeats=7)
    assert metrics["accuracy"] == 1.0 and seconds >= 0
    assert p.calls[0] == 10 and set(p.calls[1:]) == {1} and len(p.calls) > 7   # the whole set, then batch-1 calls
    assert set(timing) == {"ms_per_face", "load_average_1_5_15min", "cpu_count", "note"}
    assert timing["ms_per_face"] >= 0 and len(timing["load_average_1_5_15min"]) == 3
    assert timing["note"].startswith("median of 7 batch-1 calls")
    assert lr.when_timed({"load_average_1_5_15min": [1.25, 0, 0], "cpu_count": 2}) == \
        " (load average 1.2 on 2 cores when timed)"


def test_ablation_reports_and_tables(fitted, tmp_path):
    training = _training(fitted)
    out = lr.LandmarkReports("run", tmp_path, training["command"], META)
    part_metrics = out.ablation(fitted, Y, STUDY_EMOTIONS, training)
    assert set(part_metrics) == set(sel.PARTS) and set(part_metrics["both"]) == set(Y)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-ablation", "run-appearance", "run-geometry"]
    rep = json.loads((tmp_path / "run-geometry" / "report.json").read_text())
    assert rep["name"] == "run-geometry" and rep["kind"] == "landmarks" and rep["data"] == META
    assert rep["command"] == "python experiments/landmarks.py" and rep["appearance"] is None
    assert rep["metrics"]["test"]["accuracy"] == pytest.approx(part_metrics["geometry"]["test"]["accuracy"])
    abl = json.loads((tmp_path / "run-ablation" / "ablation.json").read_text())
    assert abl["ensembles"]["both"]["test"] == pytest.approx(part_metrics["both"]["test"]["accuracy"])


def test_chosen_reports_of_members_and_ensemble(fitted, tmp_path):
    f, training = fitted["both"], _training(fitted)
    metrics_of = lr.member_metrics(f.ensemble, f.X, f.X_mirror, Y, STUDY_EMOTIONS)
    timing = {"ms_per_face": 2.5, "load_average_1_5_15min": [0.5, 0.5, 0.5], "cpu_count": 2, "note": "n"}
    log = []
    out = lr.LandmarkReports("run", tmp_path, "cmd", META)
    out.chosen(f.ensemble, metrics_of, f.X["val"], Y["val"], f.features.feature_names(), training, timing=timing,
               extraction={"landmarks": {"seconds": 1.0}}, artifact=None, upscale=4, subset=150,
               test_via_predictor=0.75, log=log.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-ensemble", "run-logreg", "run-xgboost"]
    assert [line.split()[0] for line in log] == ["xgboost", "logreg", "ensemble"]
    ens = json.loads((tmp_path / "run-ensemble" / "report.json").read_text())
    member = json.loads((tmp_path / "run-logreg" / "report.json").read_text())
    assert ens["test_via_predictor"] == 0.75 and "test_via_predictor" not in member
    assert ens["ms_per_face"] == 2.5 and ens["timing"] == timing and ens["subset"] == 150 and ens["command"] == "cmd"
    assert ens["notes"].endswith("(load average 0.5 on 2 cores when timed)")
    assert ens["ensemble_weights"] == f.ensemble.weights and member["members"] == TINY["logreg"]
    assert len(ens["top_features"]) == min(20, f.X["val"].shape[1]) and ens["importance_method"]
    assert (tmp_path / "run-xgboost" / "importance.png").exists() and "importance.png" in member["figures"]
    assert ens["metrics"]["val"]["accuracy"] == pytest.approx(metrics_of["ensemble"]["val"]["accuracy"])
