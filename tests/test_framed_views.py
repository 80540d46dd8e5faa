"""Training faces as the Analyzer sees them (fer_hybrid.evaluation.framed_views): random conditions within their
ranges, crops identical to what the Analyzer hands its model, independence from the number of processes, the
cache, the union training split of transfer_report.distillation_with_framed_views, and the script's checks."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")

from fer_hybrid.evaluation import framed_views as V  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("angry", "fear", "happy", "sad", "surprise")


@pytest.fixture(scope="module")
def faces(sample_data):
    return sample_data.train.x[:12]


def test_random_conditions_are_seeded_and_stay_in_their_ranges():
    r = V.FramingRanges()
    conds = [V.random_condition(np.random.default_rng([3, i]), r) for i in range(400)]
    assert conds[5] == V.random_condition(np.random.default_rng([3, 5]), r)
    assert all(0.5 <= c.scale <= 2.0 and -30 <= c.rotation <= 30 for c in conds)
    assert all(0.5 <= c.gamma <= 2.0 and 0 <= c.blur <= 4 and 0 <= c.noise <= 16 for c in conds)
    assert all(c.jpeg is None or 10 <= c.jpeg <= 90 for c in conds)
    share = lambda f: np.mean([f(c) for c in conds])  # noqa: E731
    assert 0.2 < share(lambda c: c.blur > 0) < 0.4 and 0.2 < share(lambda c: c.jpeg is not None) < 0.4
    assert 0.04 < share(lambda c: c.offset == "edge") < 0.17
    assert min(c.scale for c in conds) < 0.6 and max(c.scale for c in conds) > 1.8


def test_zero_ranges_give_the_benchmarks_default_condition():
    r = V.FramingRanges(scale=(1.0, 1.0), rotation=0.0, edge_p=0.0, photometric_p=0.0)
    c = V.random_condition(np.random.default_rng(0), r)
    assert (c.scale, c.rotation, c.offset, c.gamma, c.blur, c.noise, c.jpeg) == (1.0, 0.0, "jitter", 1.0, 0.0,
                                                                                  0.0, None)


@pytest.mark.parametrize("bad", [dict(scale=(0.0, 1.0)), dict(scale=(2.0, 1.0)), dict(rotation=-1.0),
                                 dict(edge_p=1.5), dict(jpeg=(0, 50)), dict(blur=(3.0, 1.0))])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="invalid framing ranges"):
        V.FramingRanges(**bad)


def test_crops_are_what_the_analyzer_hands_its_model(faces):
    from fer_hybrid import Analyzer

    seen = []

    class Recorder:
        name, classes, input_kind = "recorder", CLASSES, "crops"

        def predict_proba(self, crops):
            from fer_hybrid.crops import to_gray_faces

            seen.append(to_gray_faces(crops, 48))
            return np.full((len(crops), 5), 0.2)

    analyzer = Analyzer(Recorder(), align="level", temperature=None)
    compared = 0
    for i, face in enumerate(faces):
        crop = V.framed_view(face, 4, i)
        rng = F.rng_for(4, V.SPLIT_TAG, "random", i)
        frame, box = F.render(face, V.random_condition(rng), rng)
        found = analyzer.analyze(frame)
        boxes = np.array([f.box for f in found]).reshape(-1, 4)
        j = F.match(boxes, box)
        assert (crop is None) == (j < 0)
        if crop is not None:
            assert crop.shape == (48, 48) and crop.dtype == np.uint8
            np.testing.assert_array_equal(crop, seen[-1][j])
            compared += 1
    assert compared >= 6


def test_a_face_that_is_not_there_gives_no_crop():
    assert V.framed_view(np.full((48, 48), 128, np.uint8), 0, 0) is None


def test_the_result_does_not_depend_on_the_number_of_processes(faces):
    crops, source, info = V.framed_views(faces, seed=1, progress=False)
    assert crops.shape == (len(source), 48, 48) and crops.dtype == np.uint8
    assert np.all(np.diff(source) > 0) and source.min() >= 0 and source.max() < len(faces)
    assert info["found"] == len(source) and info["found_share"] == pytest.approx(len(source) / len(faces))
    assert len(source) >= len(faces) // 2
    two = V.framed_views(faces, seed=1, n_jobs=2, progress=False)
    np.testing.assert_array_equal(two[0], crops)
    np.testing.assert_array_equal(two[1], source)
    other = V.framed_views(faces, seed=2, progress=False)
    assert not (len(other[1]) == len(source) and np.array_equal(other[0], crops))


def test_bad_faces_and_jobs_are_refused(faces):
    with pytest.raises(ValueError, match="uint8"):
        V.framed_views(faces.astype(np.float32), 0)
    with pytest.raises(ValueError, match="n_jobs must be >= 1"):
        V.framed_views(faces, 0, n_jobs=0)


def test_framed_views_are_cached_by_content_and_seed(faces, tmp_path, monkeypatch):
    calls = []
    real = V.framed_views

    def counting(*a, **k):
        calls.append(a[1])
        return real(*a, **k)

    monkeypatch.setattr(V, "framed_views", counting)
    crops, source, info = V.cached_framed_views(faces[:4], 0, tmp_path, progress=False)
    assert info["cached"] is False and info["n"] == 4 and Path(info["cache"]).parent == tmp_path
    again = V.cached_framed_views(faces[:4], 0, tmp_path, progress=False)
    assert again[2]["cached"] is True and calls == [0]
    np.testing.assert_array_equal(again[0], crops)
    np.testing.assert_array_equal(again[1], source)
    assert again[2]["seconds"] == pytest.approx(info["seconds"])
    V.cached_framed_views(faces[:4], 1, tmp_path, progress=False)
    assert calls == [0, 1]
    assert V.framed_views_key(faces[:4], 0, V.FramingRanges(), None, -0.9, "level") != \
        V.framed_views_key(faces[:4], 0, V.FramingRanges(rotation=10.0), None, -0.9, "level")


def test_distillation_with_framed_views_builds_the_union_split(tmp_path, monkeypatch):
    import fer_hybrid.data as data_mod
    from fer_hybrid.data import Split
    from fer_hybrid.evaluation import transfer_report as T

    train = Split(np.arange(3 * 48 * 48, dtype=np.uint8).reshape(3, 48, 48) % 250, np.array([0, 2, 4]),
                  np.array(["a.png", "b.png", "c.png"]))
    teacher = np.eye(5, dtype=np.float32)[[1, 3, 0]] * 0.8 + 0.04

    def distillation_from(name, tr, classes, t, a):
        from fer_hybrid.cnn.distill import distillation_targets

        return distillation_targets(teacher, tr.y, 5), {"name": name}, f"knowledge distillation from {name}"

    def cached(x, seed, cache_dir, n_jobs=1):   # seed 0 finds faces 0 and 2, seed 5 finds face 1
        source = np.array([0, 2]) if seed == 0 else np.array([1])
        return 255 - x[source], source, {"seed": seed, "n": len(x), "found": len(source), "seconds": 1.5}

    monkeypatch.setattr(T, "distillation_from", distillation_from)
    monkeypatch.setattr(V, "cached_framed_views", cached)
    monkeypatch.setattr(data_mod, "cache_dir", lambda: tmp_path)
    union, targets, info, text = T.distillation_with_framed_views("ens", train, CLASSES, 2.0, 0.7, [0, 5])
    assert union.keys.tolist() == ["a.png", "b.png", "c.png", "a.png#framed0", "c.png#framed0", "b.png#framed5"]
    assert union.y.tolist() == [0, 2, 4, 0, 4, 2]
    np.testing.assert_array_equal(union.x[3], 255 - train.x[0])
    assert targets.shape == (6, 10)
    assert targets[:, :5].argmax(1).tolist() == [1, 3, 0, 1, 0, 3]    # a framed crop: its clean face's answer
    assert targets[:, 5:].argmax(1).tolist() == [0, 2, 4, 0, 4, 2]
    f = info["framed_views"]
    assert f["seeds"] == [0, 5] and f["crops"] == 3 and f["seconds"] == pytest.approx(3.0)
    assert "seeds 0, 5" in text and text.startswith("knowledge distillation from ens")
    with pytest.raises(ValueError, match="distinct"):
        T.distillation_with_framed_views("ens", train, CLASSES, 2.0, 0.7, [1, 1])


def test_the_report_names_the_framed_views():
    from fer_hybrid.reports import teacher_lines

    lines = teacher_lines({"name": "ensemble", "tta": "flip-scale", "temperature": 2.0, "alpha": 0.7,
                           "framed_views": {"groups": [{"seed": 0, "found": 20000, "n": 23308, "found_share": 0.858,
                                                        "seconds": 612.5}],
                                            "target": "the teacher's answer on the clean original face"}})
    assert lines[-1] == ("- the Analyzer's crops of the training faces in random frames (seed 0: 20000 of 23308 "
                         "faces found (0.858), 612.5 s); target: the teacher's answer on the clean original face")


@pytest.mark.parametrize("argv, message", [
    (["--framed-views", "0"], "error: --framed-views needs --teacher and excludes --teacher-views"),
    (["--teacher", "ensemble", "--teacher-views", "1", "--framed-views", "0"],
     "error: --framed-views needs --teacher and excludes --teacher-views"),
    (["--teacher", "ensemble", "--framed-views", "0", "0"],
     "error: --framed-views seeds must be distinct and --framed-jobs >= 1"),
    (["--teacher", "ensemble", "--framed-views", "0", "--framed-jobs", "0"],
     "error: --framed-views seeds must be distinct and --framed-jobs >= 1"),
])
def test_the_script_refuses_bad_framed_view_options(argv, message, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz")] + argv) == 2
    assert capsys.readouterr().err.strip() == message


def test_the_script_reports_a_teacher_that_cannot_answer_in_one_line(sample_tar, monkeypatch, capsys):
    from fer_hybrid.evaluation import transfer_report as T

    def refuse(*a, **k):
        raise ValueError("teacher 'nope' is not a registered model")

    monkeypatch.setattr(T, "distillation_with_framed_views", refuse)
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(sample_tar), "--teacher", "nope", "--framed-views", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: teacher 'nope' is not a registered model"
