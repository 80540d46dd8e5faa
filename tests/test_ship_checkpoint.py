"""experiments/ship_checkpoint.py: a reported checkpoint ships under a registry name only if it is the file
the report evaluated and it beats the registered model on val; the manifest entry comes from the report."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from fer_hybrid import artifacts
from fer_hybrid.predictors import load_keras_model
from fer_hybrid.reports import file_sha256

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tiny_cnn.keras"


def _script():
    spec = importlib.util.spec_from_file_location("_exp_ship_checkpoint", ROOT / "experiments" / "ship_checkpoint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _metrics(val: float) -> dict:
    return {s: {"accuracy": a, "macro_f1": a - 0.01, "n": n} for s, a, n in
            (("train", 0.9, 100), ("val", val, 50), ("test", 0.5, 40))}


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    """A models folder with entry ``net`` (val 0.70) and a report ``cand`` of a checkpoint (val given per test)."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copyfile(TINY, models / "net.keras")
    monkeypatch.setenv(artifacts.ENV, str(models))
    artifacts.update_manifest("net", models / "net.keras", command="train net", data=None, weights=None,
                              metrics=_metrics(0.70), report="old/report.json", kind="cnn", loader="keras",
                              description="the registered net")
    ckpt = tmp_path / "ckpt" / "soup.keras"   # another network than the registered one
    ckpt.parent.mkdir()
    net = load_keras_model(TINY)
    net.set_weights([w * 2 for w in net.get_weights()])
    net.save(ckpt)

    def write_report(val: float, sha: str | None = None, **extra) -> Path:
        folder = tmp_path / "reports" / "cand"
        folder.mkdir(parents=True, exist_ok=True)
        report = {"schema": 1, "name": "cand", "kind": "cnn", "command": "python soup.py", "data": None,
                  "metrics": _metrics(val), "weights": "weight average of other, net", "ms_per_face": 3.0,
                  "tta": "flip (in the shipped graph)", "evaluated_as_run": True,
                  "soup": {"chosen": ["other", "net"]},
                  "artifact": {"path": str(ckpt), "sha256": sha or file_sha256(ckpt), "bytes": ckpt.stat().st_size},
                  **extra}
        (folder / "report.json").write_text(json.dumps(report))
        return folder

    return models, ckpt, write_report, ["--reports", str(tmp_path / "reports")]


def test_a_better_checkpoint_ships_with_its_report_metrics_and_says_what_it_averaged(setup, capsys):
    models, ckpt, write_report, reports = setup
    write_report(0.75)
    before = (models / "net.keras").read_bytes()
    rc = _script().main(["--report", "cand", "--as", "net", *reports])
    assert rc == 0
    entry = artifacts.read_manifest(models)["models"]["net"]
    assert (models / "net.keras").read_bytes() == ckpt.read_bytes() != before
    assert entry["sha256"] == file_sha256(ckpt) and entry["metrics"]["val"]["accuracy"] == 0.75
    assert entry["command"] == "python soup.py" and entry["description"] == "the registered net"
    assert entry["tta"] == "none"   # evaluated as run: the flip is in the graph
    assert entry["weights"] == ("weight average of other, net; its ingredient net is the file it replaces, "
                                "models/net.keras as made by `train net` (old/report.json)")
    assert json.loads(capsys.readouterr().out)["was"] == 0.70
    assert sorted(p.name for p in models.iterdir()) == ["manifest.json", "net.keras"]   # no temp file left


def test_a_checkpoint_that_does_not_beat_the_registered_model_on_val_changes_nothing(setup, capsys):
    models, _, write_report, reports = setup
    write_report(0.70)   # equal is not better
    manifest, model = (models / "manifest.json").read_bytes(), (models / "net.keras").read_bytes()
    assert _script().main(["--report", "cand", "--as", "net", *reports]) == 1
    assert "does not beat the registered net (0.7000)" in capsys.readouterr().out
    assert (models / "manifest.json").read_bytes() == manifest and (models / "net.keras").read_bytes() == model


@pytest.mark.parametrize("case", ["other file", "no report"])
def test_a_checkpoint_that_is_not_the_file_the_report_evaluated_is_refused_in_one_line(setup, capsys, case):
    models, _, write_report, reports = setup
    manifest = (models / "manifest.json").read_bytes()
    if case == "other file":
        write_report(0.80, sha="0" * 64)
    rc = _script().main(["--report", "cand" if case == "other file" else "nope", "--as", "net", *reports])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert ("not the file report 'cand' evaluated" if case == "other file" else "no report") in err[0]
    assert (models / "manifest.json").read_bytes() == manifest
