"""FER+ cross-check of a report's model (fer_hybrid.evaluation.ferplus_check): synthetic split, stub models
with known answers, and the rules that find (or refuse) a report's model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import reports
from fer_hybrid.data import FER2013, Split
from fer_hybrid.evaluation.ferplus_check import (CrosscheckInputs, NotScorable, Outcome, crosscheck_report,
                                                 predict_test, report_model)
from fer_hybrid.ferplus import FerPlusLabels
from fer_hybrid.labels import STUDY_EMOTIONS

TINY_CNN = Path(__file__).parent / "data" / "tiny_cnn.keras"
SHA = "a" * 64
KEYS = [f"Test/k{i}.jpg" for i in range(6)]


def synthetic_data(sha: str = SHA) -> FER2013:
    def split(n):
        return Split(np.arange(n * 48 * 48, dtype=np.int64).reshape(n, 48, 48).astype(np.uint8) // 7,
                     np.arange(n) % 5, np.array([f"k{i}" for i in range(n)]))

    test = Split(np.zeros((6, 48, 48), np.uint8), np.array([0, 1, 2, 3, 4, 4]), np.array(KEYS))
    return FER2013(split(5), split(5), test, STUDY_EMOTIONS, "synthetic.tar.gz", sha)


# FER+ majority: k3 has none (excluded), k5's majority is 0 although its FER2013 label is 4
LABELS = FerPlusLabels({KEYS[0]: 0, KEYS[1]: 1, KEYS[2]: 2, KEYS[3]: -1, KEYS[4]: 4, KEYS[5]: 0},
                       {KEYS[3]: "no_majority"}, {}, STUDY_EMOTIONS)


class Stub:
    """predict_proba: one-hot rows of ``answers`` in order, recording the batch sizes it was called with."""

    def __init__(self, answers):
        self.answers, self.calls, self.done = np.asarray(answers), [], 0

    def predict_proba(self, faces):
        self.calls.append(len(faces))
        out = np.eye(5, dtype=np.float32)[self.answers[self.done:self.done + len(faces)]]
        self.done += len(faces)
        return out


def write_report(folder: Path, name: str = "m", data_sha: str = SHA, **extra) -> Path:
    metrics = {s: {"accuracy": 0.5, "macro_f1": 0.5, "n": 6} for s in ("train", "val", "test")}
    metrics.update(extra.pop("metrics", {}))
    report = reports.make_report(name=name, kind=extra.pop("kind", "cnn"), weights=None, metrics=metrics,
                                 data={"source": "synthetic.tar.gz", "sha256": data_sha}, notes="kept as is", **extra)
    return reports.write_report(report, folder / name)


@pytest.fixture()
def inputs() -> CrosscheckInputs:
    return CrosscheckInputs("synthetic.tar.gz", synthetic_data())


# ------------------------------------------------------------------------------------------
# one report
# ------------------------------------------------------------------------------------------
def test_a_scored_report_gains_test_ferplus_and_keeps_the_rest(tmp_path, inputs):
    path = write_report(tmp_path)
    out = crosscheck_report(path, inputs, LABELS, lambda report: Stub([0, 1, 2, 3, 0, 0]))
    assert out.status == "updated"
    assert out.line.startswith("m" + " " * 36 + "FER2013 test 0.5000  FER+ test 0.8000 (n=5, excluded 1)")
    report = reports.read_report(path)
    fp = report["metrics"]["test_ferplus"]
    assert fp["accuracy"] == pytest.approx(0.8) and fp["n"] == 5 and fp["n_split"] == 6
    assert fp["excluded"]["no_majority"] == 1 and fp["excluded"]["total"] == 1
    assert fp["fer2013_label_agreement"] == pytest.approx(0.8)  # k5: FER2013 says 4, FER+ says 0
    assert report["notes"] == "kept as is" and report["metrics"]["test"]["accuracy"] == 0.5
    assert "| test, FER+ majority labels (1 excluded) | 5 | 0.8000 |" in (path.parent / "report.md").read_text()


def test_reports_not_asked_for_or_measured_on_other_data_are_left_alone(tmp_path, inputs):
    path = write_report(tmp_path)
    before = path.read_text()
    never = lambda report: pytest.fail("the model must not be loaded")  # noqa: E731
    assert crosscheck_report(path, inputs, LABELS, never, only=["other"]) == Outcome("ignored", None)
    other = write_report(tmp_path, "o", data_sha="b" * 64)
    out = crosscheck_report(other, inputs, LABELS, never)
    assert (out.status, out.line) == ("skipped", "skip o: measured on other data (synthetic.tar.gz)")
    assert path.read_text() == before


def test_an_unreadable_report_is_skipped_naming_the_file(tmp_path, inputs):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text("{not json")
    out = crosscheck_report(tmp_path / "bad" / "report.json", inputs, LABELS, lambda r: None, only=["m"])
    assert out.status == "skipped" and out.line.startswith(f"skip {tmp_path / 'bad' / 'report.json'}: ")


def test_a_report_without_a_model_keeps_earlier_numbers(tmp_path, inputs):
    def gone(report):
        raise NotScorable("no loadable model (artifact not recorded)")

    bare = write_report(tmp_path, "bare")
    assert crosscheck_report(bare, inputs, LABELS, gone) == Outcome("skipped", "skip bare: no loadable model "
                                                                            "(artifact not recorded)")
    had = write_report(tmp_path, "had", metrics={"test_ferplus": {"accuracy": 0.25}})
    before = had.read_text()
    out = crosscheck_report(had, inputs, LABELS, gone)
    assert (out.status, out.line) == ("kept", "keep had: no loadable model (artifact not recorded)")
    assert had.read_text() == before


# ------------------------------------------------------------------------------------------
# predicting the test split
# ------------------------------------------------------------------------------------------
def test_predict_test_batches_the_faces(inputs):
    stub = Stub([0, 1, 2, 3, 4, 0])
    p = predict_test(stub, inputs, batch=4)
    assert stub.calls == [4, 2] and p.argmax(1).tolist() == [0, 1, 2, 3, 4, 0]


def test_a_landmark_model_gets_the_landmarks_of_its_own_method():
    pts = np.random.default_rng(0).normal(size=(6, 68, 2))

    class Landmarky:
        class ensemble:
            landmark_method = "aligned"

        def predict_proba_points(self, x, points):
            self.seen = points
            return np.full((len(x), 5), 0.2)

    model = Landmarky()
    p = predict_test(model, CrosscheckInputs("unused", synthetic_data(), points={"aligned": pts}))
    assert p.shape == (6, 5) and model.seen is pts


# ------------------------------------------------------------------------------------------
# finding a report's model
# ------------------------------------------------------------------------------------------
def _report(name="m", kind="cnn", path=None, sha=None, **extra):
    return {"name": name, "kind": kind, "artifact": {"path": path, "sha256": sha} if path else None, **extra}


@pytest.mark.parametrize("report, message", [
    (_report(kind="peer", path="p.hdf5"), "peer models folder {peers} not present"),
    (_report("unregistered-xyz"), "no loadable model (artifact not recorded)"),
    (_report("unregistered-xyz", path="models/gone.keras"), "no loadable model (artifact models/gone.keras missing)"),
])
def test_report_model_says_why_it_cannot_load(report, message, tmp_path):
    with pytest.raises(NotScorable) as e:
        report_model(report, tmp_path / "models", tmp_path / "peers", repo_root=tmp_path)
    assert str(e.value) == message.format(peers=tmp_path / "peers")


def test_report_model_refuses_changed_files_and_unknown_descriptors(tmp_path):
    (tmp_path / "peers" / "x").mkdir(parents=True)
    with pytest.raises(NotScorable, match="peer file p.hdf5 not found under"):
        report_model(_report(kind="peer", path="p.hdf5"), tmp_path, tmp_path / "peers", repo_root=tmp_path)
    (tmp_path / "d.json").write_text(json.dumps({"format": "nope"}))
    with pytest.raises(NotScorable, match=r"changed since the report was written \(sha256 differs\)"):
        report_model(_report(path="d.json", sha="0" * 64), tmp_path, tmp_path, repo_root=tmp_path)
    with pytest.raises(NotScorable, match="d.json: unknown descriptor format 'nope'"):
        report_model(_report(path="d.json"), tmp_path, tmp_path, repo_root=tmp_path)


def test_report_model_runs_a_keras_network_with_the_tta_its_report_records(tmp_path):
    from fer_hybrid.evaluate import file_sha256
    from fer_hybrid.hybrid import CNNEnsemblePredictor
    from fer_hybrid.predictors import KerasPredictor

    shutil.copy(TINY_CNN, tmp_path / "net.keras")
    sha = file_sha256(tmp_path / "net.keras")
    flip = report_model(_report(path="net.keras", sha=sha, tta=True), tmp_path, tmp_path, repo_root=tmp_path)
    assert isinstance(flip, CNNEnsemblePredictor) and flip.tta == "flip" and flip.name == "m"
    multi = report_model(_report(path="net.keras", tta="flip-shift"), tmp_path, tmp_path, repo_root=tmp_path)
    assert multi.tta == "flip-shift"
    as_run = report_model(_report(path="net.keras", tta="flip (in the shipped graph)", evaluated_as_run=True),
                          tmp_path, tmp_path, repo_root=tmp_path)
    assert isinstance(as_run, KerasPredictor) and as_run.tta == "none"
    (tmp_path / "models").mkdir()
    shutil.copy(TINY_CNN, tmp_path / "models" / "baseline.keras")  # a registered name, no artifact recorded
    registered = report_model(_report("baseline", "baseline"), tmp_path / "models", tmp_path, repo_root=tmp_path)
    assert isinstance(registered, KerasPredictor) and registered.name == "baseline"
