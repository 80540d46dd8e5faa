"""Report JSON round trip, required keys, Markdown/PNG twins, and atomic writes surviving a kill."""
import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fer_hybrid import _atomic
from fer_hybrid import reports as rp
from fer_hybrid.evaluate import classification_metrics


@pytest.fixture(scope="module")
def metrics():
    y = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    return {"train": classification_metrics(y, y), "val": classification_metrics(y, np.roll(y, 1)),
            "test": classification_metrics(y, np.array([0, 1, 2, 3, 4, 0, 1, 2, 0, -1]))}


@pytest.fixture(scope="module")
def report(metrics):
    return rp.make_report(name="tiny-cnn", kind="cnn", weights=None, metrics=metrics, command="python x.py",
                          seconds_per_epoch=12.5, ms_per_face=3.25, params=12345, epochs=3,
                          extra_number=np.float32(0.5), nan_value=float("nan"))


def test_make_report_has_required_keys(report):
    for key in rp.REQUIRED_KEYS:
        rp.get_dotted(report, key)
    assert report["schema"] == rp.SCHEMA == 1
    assert report["delta_train_val"] == pytest.approx(1.0)
    assert report["environment"]["versions"]["python"]
    assert report["metrics"]["test"]["n"] == 10 and report["metrics"]["test"]["accuracy"] == pytest.approx(0.8)


def test_write_read_round_trip(report, tmp_path):
    path = rp.write_report(report, tmp_path / "exp")
    assert path == tmp_path / "exp" / "report.json"
    for f in ("report.json", "report.md", "confusion.png"):
        assert (tmp_path / "exp" / f).stat().st_size > 0
    assert (tmp_path / "exp" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = rp.read_report(path)
    assert back["metrics"] == json.loads(json.dumps(report["metrics"]))
    assert back["name"] == "tiny-cnn" and back["epochs"] == 3 and back["params"] == 12345
    assert back["extra_number"] == 0.5 and back["nan_value"] is None  # numpy -> Python, NaN -> null
    assert back["figures"] == ["confusion.png"]
    md = (tmp_path / "exp" / "report.md").read_text()
    assert "# tiny-cnn" in md and "| test | 10 | 0.8000 |" in md
    assert "random initialisation" in md  # weights=None says so
    assert "![confusion.png](confusion.png)" in md


def test_invalid_reports_raise_report_error(report, tmp_path):
    bad = json.loads(json.dumps(rp.json_ready(report)))
    del bad["metrics"]["test"]["macro_f1"]
    del bad["command"]
    with pytest.raises(rp.ReportError, match="missing required key.*metrics.test.macro_f1.*command"):
        rp.validate(bad)
    (tmp_path / "a.json").write_text(json.dumps(bad))
    with pytest.raises(rp.ReportError, match="a.json"):
        rp.read_report(tmp_path / "a.json")
    wrong = dict(rp.json_ready(report), schema=2)
    with pytest.raises(rp.ReportError, match="unsupported schema 2"):
        rp.validate(wrong)
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(rp.ReportError, match="b.json: not readable JSON"):
        rp.read_report(tmp_path / "b.json")
    with pytest.raises(rp.ReportError, match="no such report"):
        rp.read_report(tmp_path / "missing.json")
    with pytest.raises(rp.ReportError, match="not a JSON object"):
        rp.validate([1, 2])
    with pytest.raises(ValueError, match="unknown report kind"):
        rp.make_report(name="x", kind="magic", weights=None, metrics={})


def test_find_reports(report, tmp_path):
    rp.write_report(report, tmp_path / "b")
    rp.write_report(report, tmp_path / "a" / "nested")
    assert rp.find_reports(tmp_path) == [tmp_path / "a" / "nested" / "report.json", tmp_path / "b" / "report.json"]


def test_atomic_write_killed_midway_keeps_previous_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("previous")
    writer = textwrap.dedent("""
        import sys, time
        from fer_hybrid import _atomic
        with _atomic.atomic_path(sys.argv[1]) as tmp:
            tmp.write_text("half-writ")
            print("inside", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "inside"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()
    assert target.read_text() == "previous"


def test_atomic_write_replaces_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "x.txt"
    _atomic.write_text(target, "one")
    with pytest.raises(RuntimeError):
        with _atomic.atomic_path(target) as tmp:
            tmp.write_text("two")
            raise RuntimeError("writer failed")
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]  # no temp file left behind
    _atomic.write_text(target, "three")
    assert target.read_text() == "three" and (target.stat().st_mode & 0o044)  # readable like a normal file


def test_write_study_writes_json_ready_json_and_markdown(tmp_path):
    import json

    import numpy as np

    from fer_hybrid.reports import write_study

    j, m = write_study({"x": np.float32(0.5), "rows": np.arange(2)}, "# study\n", tmp_path / "new", "study")
    assert json.loads(j.read_text()) == {"x": 0.5, "rows": [0, 1]} and m.read_text() == "# study\n"
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["study.json", "study.md"]   # no temp left


def test_markdown_names_the_teacher_and_its_views():
    teacher = {"name": "ensemble", "tta": "flip-scale", "temperature": 2.0, "alpha": 0.7, "seconds": 4639.4,
               "train_accuracy": 0.8554,
               "views": {"copies": 2, "seed": 0, "tta": "flip", "seconds": 2154.8, "train_accuracy": 0.8421}}
    lines = rp.teacher_lines(teacher)
    assert lines[0] == ("- teacher: `ensemble` under its TTA `flip-scale`, T = 2.00, alpha = 0.70; targets on the "
                        "training images took 4639.4 s (teacher accuracy on them 0.8554)")
    assert lines[1] == ("- teacher on 2 fixed augmented view(s) of each training image (seed 0), TTA `flip`: "
                        "2154.8 s (teacher accuracy on them 0.8421)")
    assert rp.teacher_lines(None) == [] and len(rp.teacher_lines({**teacher, "views": None})) == 1
    groups = {**teacher["views"], "copies": 4, "copies_per_seed": 2, "seed": [0, 1]}
    assert rp.teacher_lines({**teacher, "views": groups})[1].startswith(
        "- teacher on 4 fixed augmented view(s) of each training image (seeds 0, 1; 2 per seed), TTA `flip`")


def test_augmentation_lines_name_the_online_augmentation_and_degradations():
    import dataclasses

    from fer_hybrid.data import Augment

    cfg = {"augment": dataclasses.asdict(Augment(low_res=0.5, blur=1.2, noise=4.0).scaled(0.5))}
    assert rp.augmentation_lines(cfg) == [
        "- online augmentation: flip; shift 0.05, rotation 5.00, zoom 0.05, brightness 0.10, contrast 0.10",
        "- training degradations, each with probability 0.25 per image: resolution loss up to 0.50 of the side, "
        "blur sigma up to 1.20 px, noise std up to 4.0 grey levels"]
    assert rp.augmentation_lines({"augment": dataclasses.asdict(Augment.none())}) == ["- online augmentation: no flip"]
    assert rp.augmentation_lines({"augment": {"flip": True}}) == ["- online augmentation: flip"]
    assert rp.augmentation_lines(None) == [] and rp.augmentation_lines({}) == []


def test_repo_path_is_relative_under_the_root_and_unchanged_outside(tmp_path):
    from fer_hybrid.reports import repo_path

    assert repo_path(tmp_path / "experiments" / "reports" / "r" / "report.json", tmp_path) == \
        "experiments/reports/r/report.json"
    assert repo_path(tmp_path.parent / "elsewhere" / "report.json", tmp_path) == \
        str((tmp_path.parent / "elsewhere" / "report.json").resolve())
    assert repo_path(tmp_path / "a" / ".." / "b.json", tmp_path) == "b.json"         # resolved first
