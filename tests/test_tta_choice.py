"""Choosing a TTA policy on val (fer_hybrid.evaluation.tta_choice) and pausing a process while timing
(fer_hybrid.evaluation.timing): synthetic faces, fake predict functions with known answers (fast)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.cnn.tta import predict_tta
from fer_hybrid.data import FER2013, Split
from fer_hybrid.errors import ArtifactMissingError
from fer_hybrid.evaluate import file_sha256, metrics_from_proba
from fer_hybrid.evaluation import tta_choice as tc
from fer_hybrid.evaluation.timing import paused
from fer_hybrid.labels import STUDY_EMOTIONS

K = len(STUDY_EMOTIONS)


def left_half_reader(x: np.ndarray) -> np.ndarray:
    """A 'model' that only looks at the left half: blank (0) -> uniform, else peaked at class mean // 50."""
    x = np.asarray(x, np.float64).reshape(len(x), 48, 48)
    left = x[:, :, :24].mean(axis=(1, 2))
    p = np.full((len(x), K), 0.2)
    seen = left > 0
    p[seen] = 0.025
    p[np.flatnonzero(seen), np.clip(left[seen] // 50, 0, K - 1).astype(int)] = 0.9
    return p.astype(np.float32)


def constant(x: np.ndarray) -> np.ndarray:
    return np.tile(np.array([0.1, 0.6, 0.1, 0.1, 0.1], np.float32), (len(x), 1))


def faces_for(y: np.ndarray) -> np.ndarray:
    """uint8 (n, 48, 48): left half blank, right half 50 * label + 25 (only the mirror shows the label)."""
    x = np.zeros((len(y), 48, 48), np.uint8)
    x[:, :, 24:] = (50 * y + 25)[:, None, None]
    return x


def split_of(y) -> Split:
    y = np.asarray(y, np.int64)
    return Split(faces_for(y), y, np.array([f"img{i}.jpg" for i in range(len(y))]))


@pytest.fixture()
def data() -> FER2013:
    return FER2013(split_of([0, 1, 2, 3, 4, 1]), split_of([0, 1, 2, 3, 4] * 2), split_of([4, 3, 2, 1, 0, 0, 1]),
                   STUDY_EMOTIONS, "synthetic", "0" * 64)


# ------------------------------------------------------------------------------------------
# comparison and choice
# ------------------------------------------------------------------------------------------
def test_flip_wins_when_only_the_mirror_sees_the_face(data):
    rows = tc.compare_policies(left_half_reader, data.val, ["none", "flip"], batch_size=4)
    assert [(r["policy"], r["views"]) for r in rows] == [("none", 1), ("flip", 2)]
    assert rows[0]["accuracy"] == pytest.approx(0.2)  # uniform rows -> class 0, right for 2 of 10
    assert rows[1]["accuracy"] == 1.0 and rows[1]["macro_f1"] == 1.0
    assert tc.choose_policy(rows) is rows[1]
    for r in rows:  # each row is exactly predict_tta's answer for that policy
        want = metrics_from_proba(data.val.y, predict_tta(left_half_reader, data.val.x, r["policy"]))
        assert r["metrics"] == want


def test_a_tie_goes_to_fewer_views_then_to_the_earlier_policy(data):
    rows = tc.compare_policies(constant, data.val, ["flip-shift", "flip", "none"])
    assert len({r["accuracy"] for r in rows}) == 1 and rows[0]["accuracy"] == pytest.approx(0.2)
    assert tc.choose_policy(rows)["policy"] == "none"
    same = [{"policy": "b", "views": 2, "accuracy": 0.7}, {"policy": "a", "views": 2, "accuracy": 0.7},
            {"policy": "c", "views": 18, "accuracy": 0.7}, {"policy": "d", "views": 1, "accuracy": 0.6}]
    assert tc.choose_policy(same)["policy"] == "b"


def test_choose_needs_rows():
    with pytest.raises(ValueError, match="no TTA policy rows to choose from"):
        tc.choose_policy([])


def test_chosen_metrics_evaluates_test_once_and_train_only_on_request(data):
    rows = tc.compare_policies(left_half_reader, data.val, ["none", "flip"])
    best = tc.choose_policy(rows)
    m = tc.chosen_metrics(left_half_reader, data, best, batch_size=3)
    assert list(m) == ["train", "val", "test"] and m["val"] is best["metrics"]
    assert m["test"] == metrics_from_proba(data.test.y, predict_tta(left_half_reader, data.test.x, "flip"))
    assert m["test"]["accuracy"] == 1.0
    assert m["train"] == {"n": 6, "accuracy": None, "macro_f1": None, "note": tc.TRAIN_NOT_EVALUATED}
    with_train = tc.chosen_metrics(left_half_reader, data, rows[0], train=True)
    assert with_train["train"]["n"] == 6 and with_train["train"]["accuracy"] == pytest.approx(1 / 6)


# ------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------
def test_checked_policies_names_the_valid_ones():
    assert tc.checked_policies(("none", "flip")) == ["none", "flip"]
    with pytest.raises(tc.TTAInputError, match=r"unknown TTA policy 'mirror'; valid policies: flip, "):
        tc.checked_policies(["none", "mirror"])
    with pytest.raises(tc.TTAInputError, match="no TTA policy to compare"):
        tc.checked_policies([])
    assert issubclass(tc.TTAInputError, ValueError)


def test_keras_cnn_artifact(tmp_path):
    with pytest.raises(tc.TTAInputError, match="unknown model 'nope'; valid models: "):
        tc.keras_cnn_artifact("nope", tmp_path)
    with pytest.raises(tc.TTAInputError, match="'landmarks' is a landmarks model; TTA applies to the Keras CNNs"):
        tc.keras_cnn_artifact("landmarks", tmp_path)
    with pytest.raises(ArtifactMissingError, match=r"no artifact at .*vggbn\.keras; train it with `python experiments/"
                                                   r"cnn_transfer\.py --backbone vggbn"):
        tc.keras_cnn_artifact("vggbn", tmp_path)
    (tmp_path / "baseline.keras").write_bytes(b"not read here")
    path, spec = tc.keras_cnn_artifact("baseline", tmp_path)
    assert path == tmp_path / "baseline.keras" and spec.kind == "baseline"


# ------------------------------------------------------------------------------------------
# report pieces
# ------------------------------------------------------------------------------------------
def test_report_fields_and_notes():
    rows = [{"policy": "none", "views": 1, "accuracy": 0.5, "macro_f1": 0.4, "metrics": {}},
            {"policy": "flip", "views": 2, "accuracy": 0.75, "macro_f1": 0.7, "metrics": {}}]
    assert tc.report_fields(rows, rows[1]) == {
        "tta": "flip", "tta_views": 2, "tta_selection": "best val accuracy; ties -> fewer views",
        "tta_val": [{"policy": "none", "views": 1, "accuracy": 0.5, "macro_f1": 0.4},
                    {"policy": "flip", "views": 2, "accuracy": 0.75, "macro_f1": 0.7}]}
    notes = tc.report_notes("vggbn", None, rows, rows[1], train=False, base_found=True)
    assert notes.startswith("test-time augmentation of the shipped vggbn model (no retraining); trained from random")
    assert "policy 'flip' = face + mirror (2 views), chosen by val accuracy" in notes
    assert "among: none (1 view) 0.5000 / 0.4000; flip (2 views) 0.7500 / 0.7000 (val accuracy" in notes
    assert "train not evaluated with TTA (null)" in notes and notes.endswith("the base model's training run")
    other = tc.report_notes("vggface", "vggface (imagenet)", rows, rows[0], train=True, base_found=False)
    assert "initial weights: vggface (imagenet); " in other and "(null)" not in other
    assert other.endswith("the base model's training report was not found")
    assert tc.val_lines(rows, rows[1]) == ["val none         views  1  acc 0.5000  macro-F1 0.4000",
                                           "val flip         views  2  acc 0.7500  macro-F1 0.7000  <- chosen"]


def test_base_model_facts_only_for_the_very_same_file(tmp_path):
    from fer_hybrid import reports

    art, other = tmp_path / "m.keras", tmp_path / "n.keras"
    art.write_bytes(b"the model")
    other.write_bytes(b"another model")
    metrics = {s: {"accuracy": 0.5, "macro_f1": 0.5, "n": 4} for s in ("train", "val", "test")}
    report = reports.make_report(name="m", kind="cnn", weights=None, metrics=metrics, seconds_per_epoch=3.5,
                                 artifact=reports.artifact_info(art, tmp_path), backbone="vggbn", image_size=48,
                                 epochs=9, best_epoch=7)
    reports.write_report(report, tmp_path / "reports" / "m")
    path = tmp_path / "reports" / "m" / "report.json"
    facts, shown = tc.base_model_facts(path, art, tmp_path)
    assert facts == {"backbone": "vggbn", "image_size": 48, "epochs": 9, "best_epoch": 7, "seconds_per_epoch": 3.5}
    assert shown == "reports/m/report.json"
    assert tc.base_model_facts(path, art, tmp_path / "elsewhere")[1] == str(path)
    assert tc.base_model_facts(path, other, tmp_path) == ({}, None)
    assert tc.base_model_facts(tmp_path / "absent.json", art, tmp_path) == ({}, None)
    assert file_sha256(art) == report["artifact"]["sha256"]


def test_save_policies_png_writes_a_png(tmp_path):
    rows = [{"policy": "none", "views": 1, "accuracy": 0.5, "macro_f1": 0.4},
            {"policy": "flip", "views": 2, "accuracy": 0.75, "macro_f1": 0.7}]
    path = tc.save_policies_png(rows, rows[1], tmp_path / "val.png", "title")
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_time_policies_once_per_distinct_policy():
    import keras

    inp = keras.Input((48, 48, 1))
    model = keras.Model(inp, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inp)))
    timed = tc.time_policies(model, "tiny", ["none", "flip", "none"], np.zeros((1, 48, 48), np.uint8))
    assert list(timed) == ["none", "flip"] and all(v > 0 for v in timed.values())


# ------------------------------------------------------------------------------------------
# pausing a background process while timing
# ------------------------------------------------------------------------------------------
def _wait_state(pid: int, states: str, timeout: float = 2.0) -> str:
    """The process's /proc state letter once it is one of ``states`` (signals arrive asynchronously)."""
    end = time.monotonic() + timeout
    while True:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        if state in states or time.monotonic() > end:
            return state
        time.sleep(0.01)


def test_paused_stops_and_always_continues_the_process(tmp_path):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "pid").write_text(f"{proc.pid}\n")
        with pytest.raises(RuntimeError):
            with paused(tmp_path / "pid") as pid:
                assert pid == proc.pid and _wait_state(proc.pid, "T") == "T"
                raise RuntimeError("failure while timing")
        assert _wait_state(proc.pid, "SR") in ("S", "R")
        with paused(tmp_path / "absent") as pid:
            assert pid is None
        with paused(None) as pid:
            assert pid is None
    finally:
        proc.kill()
        proc.wait()


def test_paused_warns_and_runs_the_block_for_an_unusable_pid_file(tmp_path, capsys):
    (tmp_path / "pid").write_text("not-a-pid\n")
    with paused(tmp_path / "pid") as pid:
        assert pid is None
    assert capsys.readouterr().err.startswith(f"warning: not pausing pid from {tmp_path / 'pid'}: invalid literal")
    no_such_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    (tmp_path / "pid").write_text(str(no_such_pid))
    with paused(tmp_path / "pid") as pid:
        assert pid is None
    assert "not pausing pid" in capsys.readouterr().err
