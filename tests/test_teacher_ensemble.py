"""experiments/teacher_ensemble.py (a distillation teacher chosen on val among candidate CNNs, with its report and
descriptor) and cnn_transfer.py --teacher <descriptor.json>, on the 70-image sample with two 8-unit CNNs."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_CNN = Path(__file__).parent / "data" / "tiny_cnn.keras"
sys.path.insert(0, str(ROOT / "experiments"))


@pytest.fixture(scope="module")
def two_cnns(tmp_path_factory):
    """A models folder with the fixture CNN as ``a.keras`` and a copy whose last layer is scaled as ``b.keras``."""
    from fer_hybrid.keras_io import load_keras_model

    root = tmp_path_factory.mktemp("teacher-models")
    shutil.copy(TINY_CNN, root / "a.keras")
    m = load_keras_model(TINY_CNN)
    last = m.layers[-1]
    last.set_weights([w * 3.0 for w in last.get_weights()])
    m.save(root / "b.keras")
    return root


def test_teacher_is_chosen_on_val_reported_and_loadable(two_cnns, sample_tar, sample_data, tmp_path, capsys):
    import teacher_ensemble

    from fer_hybrid.cnn.distill import cached_teacher_proba, teacher_key
    from fer_hybrid.data import cache_dir
    from fer_hybrid.evaluation import transfer_report as T
    from fer_hybrid.reports import read_report

    reports = tmp_path / "r"
    assert teacher_ensemble.main(["--candidates", "a,b", "--tta", "flip", "--data", str(sample_tar),
                                  "--models", str(two_cnns), "--reports", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "candidate a" in out and "candidate b" in out and "teacher on the 25 training images" in out
    (folder,) = reports.iterdir()
    assert folder.name.startswith("cnn-ensemble-")
    report = read_report(folder / "report.json")
    desc = json.loads((folder / "ensemble.json").read_text())
    assert report["candidates"] == ["a", "b"] and report["tta"] == "flip"
    assert desc["members"] == folder.name.removeprefix("cnn-ensemble-").split("+")
    assert np.isclose(sum(report["member_weights"]), 1.0)
    assert report["train_targets"]["cache"].startswith("teacher-")
    sel = json.loads((folder / "selection.json").read_text())
    assert set(sel["candidates"]) == {"a", "b"} and sel["passed"] and sel["min_val"] is None
    assert sel["val_accuracy"] == pytest.approx(report["metrics"]["val"]["accuracy"])
    assert sel["test_accuracy"] == pytest.approx(report["metrics"]["test"]["accuracy"])
    assert "| a |" in (folder / "selection.md").read_text()
    # the descriptor loads as a teacher and answers as the report says; its train answers are the cached targets
    teacher = T.load_teacher(str(folder / "ensemble.json"))
    assert teacher.tta == "flip" and list(teacher.weights) == pytest.approx(report["member_weights"])
    p = teacher.predict_proba(sample_data.val.x)
    assert np.isclose((p.argmax(1) == sample_data.val.y).mean(), report["metrics"]["val"]["accuracy"])
    cached, info = cached_teacher_proba(lambda x: pytest.fail("must read the cache"), sample_data.train.x,
                                        teacher_key("any", teacher), cache_dir())
    assert info["cached"]
    assert np.isclose((cached.argmax(1) == sample_data.train.y).mean(), report["metrics"]["train"]["accuracy"])


def test_teacher_ensemble_refuses_bad_input_in_one_line(two_cnns, sample_tar, tmp_path, capsys):
    import teacher_ensemble

    base = ["--data", str(sample_tar), "--models", str(two_cnns), "--reports", str(tmp_path / "r")]
    assert teacher_ensemble.main(["--candidates", "a,nosuch"] + base) == 2
    assert "CNN 'nosuch' is not trained yet" in capsys.readouterr().err
    assert teacher_ensemble.main(["--candidates", "a", "--tta", "sideways"] + base) == 2
    assert "--tta: unknown TTA policy 'sideways'" in capsys.readouterr().err
    assert teacher_ensemble.main(["--candidates", " , "] + base) == 2
    assert "--candidates names no CNN" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_load_teacher_takes_a_name_or_a_descriptor(tmp_path):
    from fer_hybrid.errors import ArtifactMissingError
    from fer_hybrid.evaluation import transfer_report as T

    with pytest.raises(ArtifactMissingError, match="teacher descriptor .*gone.json not found"):
        T.load_teacher(str(tmp_path / "gone.json"))
    with pytest.raises(ValueError):
        T.load_teacher("no-such-model")
    assert T.load_teacher("vggbn").predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 5)


def test_cnn_transfer_distils_from_a_descriptor_and_refuses_a_missing_teacher(two_cnns, sample_tar, tmp_path,
                                                                              monkeypatch, capsys):
    import cnn_transfer
    import teacher_ensemble

    from fer_hybrid.reports import read_report

    reports = tmp_path / "r"
    assert teacher_ensemble.main(["--candidates", "a,b", "--tta", "flip", "--data", str(sample_tar),
                                  "--models", str(two_cnns), "--reports", str(reports)]) == 0
    (folder,) = reports.iterdir()
    monkeypatch.setattr(sys, "argv", ["experiments/cnn_transfer.py"])
    base = ["--data", str(sample_tar), "--backbone", "baseline", "--epochs", "1", "--batch-size", "16",
            "--precision", "float32", "--reports", str(tmp_path / "s"), "--checkpoints", str(tmp_path / "c")]
    capsys.readouterr()
    assert cnn_transfer.main(base + ["--teacher", str(folder / "ensemble.json"), "--name", "kd"],
                             kind="baseline") == 0
    report = read_report(tmp_path / "s" / "kd" / "report.json")
    assert report["teacher"]["name"] == str(folder / "ensemble.json") and report["teacher"]["tta"] == "flip"
    assert report["teacher"]["cached"]  # the targets teacher_ensemble.py computed
    capsys.readouterr()
    assert cnn_transfer.main(base + ["--teacher", str(tmp_path / "gone.json"), "--name", "kd2"],
                             kind="baseline") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: teacher descriptor") and "gone.json not found" in err[0]
    assert cnn_transfer.main(base + ["--teacher", "no-such-model", "--name", "kd3"], kind="baseline") == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "s" / "kd2").exists() and not (tmp_path / "s" / "kd3").exists()


def test_min_val_stops_before_the_training_set_with_the_selection_written(two_cnns, sample_tar, tmp_path,
                                                                          monkeypatch, capsys):
    import teacher_ensemble

    from fer_hybrid.cnn import distill

    monkeypatch.setattr(distill, "cached_teacher_proba", lambda *a, **k: pytest.fail("must stop before training"))
    reports = tmp_path / "r"
    assert teacher_ensemble.main(["--candidates", "a,b", "--tta", "flip", "--min-val", "1.0", "--data",
                                  str(sample_tar), "--models", str(two_cnns), "--reports", str(reports)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not above --min-val 1.0000" in err[0]
    (folder,) = reports.iterdir()
    assert sorted(f.name for f in folder.iterdir()) == ["selection.json", "selection.md"]   # no report, no temp
    sel = json.loads((folder / "selection.json").read_text())
    assert sel["passed"] is False and sel["min_val"] == 1.0
    assert "stopped before the training set" in (folder / "selection.md").read_text()
