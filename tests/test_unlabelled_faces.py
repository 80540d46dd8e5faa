"""Distillation on training faces outside the study classes (transfer_report.with_unlabelled_faces,
cnn_transfer.py --unlabelled-faces) on the 70-image sample with a small registered teacher."""
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.data import load_fer2013
from fer_hybrid.evaluation import transfer_report as T

ROOT = Path(__file__).resolve().parents[1]


def test_unlabelled_faces_join_with_the_teachers_answer_in_both_halves(sample_tar, sample_data):
    targets, info, text = T.distillation_from("vggbn", sample_data.train, sample_data.classes, 2.0, 0.7)
    union, tg, info2, text2 = T.with_unlabelled_faces("vggbn", sample_data.train, targets, info, text, sample_tar,
                                                      ("neutral", "disgust"))
    extra = load_fer2013(sample_tar, classes=("neutral", "disgust")).train
    n, m = len(sample_data.train), len(extra)
    assert m > 0 and len(union) == n + m == len(tg) and tg.shape[1] == 10
    np.testing.assert_array_equal(union.x[n:], extra.x)   # training faces only, in the source's order
    np.testing.assert_array_equal(tg[:n], targets)
    np.testing.assert_allclose(tg[n:, :5], tg[n:, 5:])     # the teacher's answer is the label part too
    np.testing.assert_allclose(tg[n:, :5].sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(union.y[n:], tg[n:, :5].argmax(1))
    assert all(k.endswith("#unlabelled") for k in union.keys[n:])
    assert info2["unlabelled_faces"]["n"] == m and info2["unlabelled_faces"]["classes"] == ["neutral", "disgust"]
    assert f"plus the {m} training faces labelled neutral, disgust" in text2
    val_test = set(sample_data.val.keys.tolist()) | set(sample_data.test.keys.tolist())
    assert not val_test & {k.removesuffix("#unlabelled") for k in union.keys[n:]}


@pytest.mark.parametrize("classes", [("happy",), ("neutral", "fear"), (), "neutral,calm", " , "])
def test_unlabelled_faces_must_lie_outside_the_study(classes, sample_tar, sample_data):
    with pytest.raises(ValueError, match="outside the study"):
        T.with_unlabelled_faces("vggbn", sample_data.train, np.zeros((len(sample_data.train), 10)), {}, "",
                                sample_tar, classes)


def test_unlabelled_classes_parses_names():
    assert T.unlabelled_classes("neutral, disgust") == ("neutral", "disgust")
    assert T.unlabelled_classes(["disgust"]) == ("disgust",)


def test_cnn_transfer_unlabelled_faces_trains_and_reports(sample_tar, tmp_path, monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    from fer_hybrid.reports import read_report

    monkeypatch.setattr(sys, "argv", ["experiments/cnn_transfer.py"])
    base = ["--data", str(sample_tar), "--backbone", "baseline", "--epochs", "1", "--batch-size", "16",
            "--precision", "float32", "--reports", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "c")]
    assert cnn_transfer.main(base + ["--teacher", "vggbn", "--unlabelled-faces", "neutral,disgust",
                                     "--name", "ul"], kind="baseline") == 0
    report = read_report(tmp_path / "r" / "ul" / "report.json")
    assert report["teacher"]["unlabelled_faces"]["classes"] == ["neutral", "disgust"]
    assert "training faces labelled neutral, disgust" in report["labels_trained_on"]
    assert "training faces outside the study (neutral, disgust)" in (tmp_path / "r" / "ul" / "report.md").read_text()
    capsys.readouterr()
    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz"), "--teacher", "vggbn",
                              "--unlabelled-faces", "sad"]) == 2  # checked before any data or teacher work
    err = capsys.readouterr().err
    assert "--unlabelled-faces: unlabelled faces must come from FER2013 classes outside the study" in err
    assert "FER2013 source not found" not in err
    assert cnn_transfer.main(base + ["--unlabelled-faces", "neutral", "--name", "bad2"]) == 2
    assert "--unlabelled-faces needs --teacher" in capsys.readouterr().err
