"""The analysis layer: long tables (schema, no-face rows, two stable tracks), summaries with known answers,
timelines and contact sheets, the batch (resume, a corrupt file, index.csv), the CLI's exit codes, and
the Dask path (2 local workers give the same files as 1). Uses the tiny random-weight CNN from
tests/data (labels are arbitrary but valid) and generated videos of the fixture face."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pandas as pd
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import FACE, models_dir, write_video  # noqa: E402,F401

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid import analyze as cli  # noqa: E402
from fer_hybrid.analysis import batch, make_settings, photo_summary, read_table, run_batch, video_summary  # noqa: E402
from fer_hybrid.analysis.tables import write_table  # noqa: E402
from fer_hybrid.analysis.timeline import timeline_png  # noqa: E402
from fer_hybrid.inference.table import COLUMNS  # noqa: E402
from fer_hybrid.labels import STUDY_EMOTIONS  # noqa: E402

BLANK = (0, 1, 2, 12, 13, 14)  # frames without faces; detection runs on frames 0, 3, 6, 9, 12


def two_face_frames(n: int = 15, blank=BLANK, size: int = 180) -> list[np.ndarray]:
    """n BGR frames 440x210: the fixture face and its mirror image side by side, moving right 2 px a
    frame; frames in ``blank`` are empty."""
    face = cv2.resize(cv2.imread(str(FACE)), (size, size), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        img = np.full((210, 440, 3), 90, np.uint8)
        if i not in blank:
            x = 10 + 2 * i
            img[15:15 + size, x:x + size] = face
            img[15:15 + size, x + 220:x + 220 + size] = face[:, ::-1]
        frames.append(img)
    return frames


def two_faces_image() -> np.ndarray:
    face = cv2.imread(str(FACE))
    return np.concatenate([face, np.full((face.shape[0], 60, 3), 90, np.uint8), face[:, ::-1]], axis=1)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "two.mp4", two_face_frames())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder: one face (jpg), two faces (png), the face as GIF, a blank image, and a text file as .jpg."""
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    shutil.copy(FACE, d / "a_one.jpg")
    cv2.imwrite(str(d / "b_two.png"), two_faces_image())
    Image.open(FACE).convert("RGB").save(d / "c_one.gif")
    cv2.imwrite(str(d / "d_blank.png"), np.full((200, 300, 3), 128, np.uint8))
    (d / "e_broken.jpg").write_text("not an image")
    return d


@pytest.fixture(scope="module")
def settings(models_dir):
    return make_settings("vggbn", models_dir)


def outputs(folder) -> dict[str, bytes]:
    """Every file under ``folder`` except the per-input meta.json (it holds timings) -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "meta.json"}


def no_temp_files(folder) -> bool:
    return not [p for p in folder.rglob(".*") if ".tmp-" in p.name]


# ------------------------------------------------------------------------------------------------- tables
def test_video_table_has_no_face_rows_and_two_stable_tracks(models_dir, video):
    df = Analyzer("vggbn", models_dir=models_dir).analyze_video(video, detect_every=3).to_dataframe()
    assert list(df.columns) == COLUMNS
    assert str(df["track_id"].dtype) == "Int64" and str(df["detected"].dtype) == "boolean"
    assert str(df["label"].dtype) == "string" and str(df["p_happy"].dtype) == "float64"
    blank = df[df["frame"].isin(BLANK)]
    assert len(blank) == len(BLANK) and blank["frame"].tolist() == list(BLANK)  # one row per empty frame
    face_cols = (["track_id", "x0", "y0", "x1", "y1", "detected", "label", "smoothed_label"]
                 + [f"p_{c}" for c in STUDY_EMOTIONS])
    assert blank[face_cols].isna().all().all()
    faces = df[~df["frame"].isin(BLANK)]
    assert faces.groupby("frame").size().tolist() == [2] * 9
    assert set(faces["track_id"]) == {0, 1}
    for _, tr in faces.groupby("track_id"):  # each track stays on one side of the frame
        centre = (tr["x0"] + tr["x1"]) / 2
        assert (centre < 220).all() or (centre > 220).all()
        assert tr["frame"].tolist() == list(range(3, 12))
    assert faces["detected"].tolist() == [f in (3, 6, 9) for f in faces["frame"]]
    assert faces["score"].notna().tolist() == faces["detected"].tolist()
    assert set(faces["label"]) <= set(STUDY_EMOTIONS)
    np.testing.assert_allclose(faces[[f"p_{c}" for c in STUDY_EMOTIONS]].sum(axis=1), 1.0, atol=1e-4)
    assert df["time_ms"].tolist() == sorted(df["time_ms"]) and df["time_ms"].iloc[1] == pytest.approx(100.0)
    assert (df["source"] == str(video)).all() and df["file"].isna().all() and (df["model"] == "vggbn").all()
    # within a frame, faces are in track-id order
    assert all(g["track_id"].tolist() == sorted(g["track_id"]) for _, g in faces.groupby("frame"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_round_trip(tmp_path, models_dir, video, fmt):
    df = Analyzer("vggbn", models_dir=models_dir).analyze_video(video).to_dataframe()
    path = write_table(df, tmp_path / f"t.{fmt}")
    pd.testing.assert_frame_equal(read_table(path), df)
    assert no_temp_files(tmp_path)


# ------------------------------------------------------------------------------------------------ summaries
def table(rows: list[dict]) -> pd.DataFrame:
    from fer_hybrid.inference.table import columns

    return pd.DataFrame(rows, columns=columns()).astype({"track_id": "Int64", "x0": "Int64", "label": "string",
                                                         "smoothed_label": "string"})


def one_hot(c: str) -> dict:
    return {f"p_{k}": float(k == c) for k in STUDY_EMOTIONS} | {f"s_{k}": float(k == c) for k in STUDY_EMOTIONS}


def face(c: str, **kw) -> dict:
    """A face row answered with class ``c`` (probability 1, smoothed too)."""
    return {"x0": 1, "label": c, "smoothed_label": c, **one_hot(c), **kw}


def test_video_summary_known_answer():
    rows = [{"frame": 0, "time_ms": 0.0},  # no face
            face("happy", frame=1, time_ms=40.0, track_id=7), face("happy", frame=2, time_ms=80.0, track_id=7),
            face("sad", frame=3, time_ms=120.0, track_id=7),
            {"frame": 4, "time_ms": 160.0, "track_id": 7, "x0": 1},  # the model had no answer
            {"frame": 4, "time_ms": 160.0, "track_id": 9, "x0": 1}]  # a track never answered
    s = video_summary(table(rows))
    assert s["track_id"].tolist() == [7, 9] and s["frames"].tolist() == [4, 1] and s["answered"].tolist() == [3, 0]
    t7 = s.iloc[0]
    assert (t7["first_ms"], t7["last_ms"]) == (40.0, 160.0)
    assert t7["share_happy"] == pytest.approx(2 / 3) and t7["share_sad"] == pytest.approx(1 / 3)
    assert t7["share_angry"] == 0
    assert t7["mean_p_happy"] == pytest.approx(2 / 3) and t7["top_label"] == "happy"
    assert pd.isna(s.iloc[1]["top_label"]) and np.isnan(s.iloc[1]["share_happy"])  # never a made-up label


def test_photo_summary_known_answer():
    rows = [face("fear", frame=0), face("fear", frame=0, x0=5), face("sad", frame=1), {"frame": 2},
            {"frame": 3, "x0": 1}]
    s = photo_summary(table(rows)).set_index("label")
    assert s["faces"].to_dict() == {"angry": 0, "fear": 2, "happy": 0, "sad": 1, "surprise": 0, "(no answer)": 1}
    assert s.loc["fear", "share"] == pytest.approx(0.5)


def test_timeline_of_a_video_without_faces_is_still_a_png():
    png = timeline_png(table([{"frame": i, "time_ms": 40.0 * i} for i in range(5)]), "empty")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] > 500


# ---------------------------------------------------------------------------------------------------- batch
def test_batch_outputs_for_a_video_and_a_photo_folder(tmp_path, settings, video, photos):
    out = tmp_path / "out"
    res = run_batch([video, photos], out, settings, progress=False)
    assert (res.done, res.cached, res.errors) == (2, 0, 0)
    index = pd.read_csv(out / "index.csv")
    assert index["input"].tolist() == [str(video), str(photos)] and index["kind"].tolist() == ["video", "photos"]
    assert index["status"].tolist() == ["done", "done"] and index["frames"].tolist() == [15, 4]
    assert index["tracks"].tolist() == [2, 0] and index["frames_without_face"].tolist() == [6, 1]
    assert index.loc[1, "skipped_files"] == str(photos / "e_broken.jpg")
    v, p = out / index.loc[0, "output"], out / index.loc[1, "output"]
    assert sorted(x.name for x in v.iterdir()) == ["meta.json", "summary.csv", "table.csv", "timeline.png"]
    assert sorted(x.name for x in p.iterdir()) == ["contact_sheet.png", "meta.json", "summary.csv", "table.csv"]
    vt = read_table(v / "table.csv")
    assert list(vt.columns) == COLUMNS and len(vt) == 2 * 9 + 6
    assert read_table(v / "summary.csv")["frames"].tolist() == [9, 9]
    pt = read_table(p / "table.csv")
    names = ("a_one.jpg", "b_two.png", "b_two.png", "c_one.gif", "d_blank.png")
    assert pt["file"].tolist() == [str(photos / n) for n in names]
    assert pt["track_id"].isna().all() and pt["time_ms"].isna().all() and (pt["source"] == str(photos)).all()
    assert pt["frame"].tolist() == [0, 1, 1, 2, 3]
    assert pt.loc[pt["file"].str.endswith("d_blank.png"), "x0"].isna().all()
    assert read_table(p / "summary.csv")["faces"].sum() == 4
    sheet = cv2.imread(str(p / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[1] >= 4 * 112
    assert no_temp_files(out)


def test_parquet_outputs(tmp_path, settings, photos):
    out = tmp_path / "out"
    res = run_batch([photos], out, dataclasses.replace(settings, fmt="parquet"), progress=False)
    folder = out / res.index.loc[0, "output"]
    assert sorted(p.name for p in folder.iterdir()) == ["contact_sheet.png", "meta.json", "summary.parquet",
                                                        "table.parquet"]
    df = read_table(folder / "table.parquet")
    assert list(df.columns) == COLUMNS and len(df) == 5 and str(df["track_id"].dtype) == "Int64"


def test_resume_skips_up_to_date_inputs(tmp_path, settings, video, photos):
    out = tmp_path / "out"
    run_batch([video, photos], out, settings, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "index.csv"}
    again = run_batch([video, photos], out, settings, progress=False)
    assert (again.done, again.cached, again.frames) == (0, 2, 0)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing rewritten
    assert pd.read_csv(out / "index.csv")["status"].tolist() == ["cached", "cached"]
    changed = dataclasses.replace(settings, smoothing=1.0)  # a video setting: the video runs again, not the photos
    res = run_batch([video, photos], out, changed, progress=False)
    assert (res.done, res.cached) == (1, 1) and res.index["status"].tolist() == ["done", "cached"]
    assert run_batch([video], out, settings, progress=False, force=True).done == 1


def test_the_model_fingerprint_follows_the_artifact(tmp_path, settings, models_dir, video):
    other = tmp_path / "models"
    other.mkdir()
    (other / "vggbn.keras").write_bytes((models_dir / "vggbn.keras").read_bytes() + b"\0")
    assert batch.model_fingerprint("vggbn", other) != settings.model_fingerprint
    # a worker whose model differs from the one the batch was planned with refuses to run it
    wrong = dataclasses.replace(settings, model_fingerprint="0" * 64)
    (job,) = batch.expand_inputs([video])
    result = batch.analyze_job(job, wrong, "key", "content")
    assert result["status"] == "error" and "fingerprint" in result["error"]


def test_a_corrupt_file_is_reported_and_the_batch_finishes(tmp_path, models_dir, video, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out"
    code = cli.main([str(video), str(bad), str(tmp_path / "missing.mp4"), "--out", str(out), "--models-dir",
                     str(models_dir), "--model", "vggbn", "--no-progress"])
    assert code == cli.EXIT_FAILED_INPUTS
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{bad}" in err and "missing.mp4" in err
    index = pd.read_csv(out / "index.csv")
    assert index["status"].tolist() == ["done", "error", "error"]
    assert "cannot read video" in index.loc[1, "error"] and "source not found" in index.loc[2, "error"]
    assert (out / index.loc[0, "output"] / "table.csv").is_file()
    assert not (out / "bad").exists() and no_temp_files(out)


def test_output_names_are_unique(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "clip.mp4").write_bytes(b"x")
    jobs = batch.expand_inputs([tmp_path / "a" / "clip.mp4", tmp_path / "b", tmp_path / "a" / "clip.mp4"])
    assert [j.output for j in jobs] == ["clip", "clip-2"]  # the repeated file is analysed once


@pytest.mark.parametrize("argv, message", [
    (["--model", "no-such-model"], "unknown model"),
    (["--model", "vggface"], "train it with"),
])
def test_cli_bad_model_is_one_line_exit_2(tmp_path, models_dir, video, capsys, argv, message):
    code = cli.main([str(video), "--out", str(tmp_path / "o"), "--models-dir", str(models_dir), *argv])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_BAD_INPUT and message in err and len(err.splitlines()) == 1


def test_cli_bad_options(tmp_path, models_dir, video, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert cli.main([str(video), "--out", str(afile), "--models-dir", str(models_dir)]) == cli.EXIT_BAD_INPUT
    assert "not a folder" in capsys.readouterr().err
    for bad in (["--workers", "0"], ["--workers", "2", "--scheduler", "tcp://x:1"], ["--format", "xlsx"],
                ["--smoothing", "0"]):
        with pytest.raises(SystemExit) as e:
            cli.main([str(video), "--out", str(tmp_path / "o"), *bad])
        assert e.value.code == 2


# ----------------------------------------------------------------------------------------------------- Dask
def test_dask_with_two_workers_gives_the_same_files_as_one(tmp_path, settings, video, photos):
    clip = write_video(tmp_path / "short.mp4", two_face_frames(8, blank=(0,))[:8])
    inputs = [video, photos, clip]
    one = run_batch(inputs, tmp_path / "w1", settings, workers=1, progress=False)
    two = run_batch(inputs, tmp_path / "w2", settings, workers=2, progress=False)
    assert (one.workers, two.workers) == (1, 2) and one.done == two.done == 3
    a, b = outputs(tmp_path / "w1"), outputs(tmp_path / "w2")
    assert sorted(a) == sorted(b) and len(a) == 1 + 3 * 3
    for name in a:
        assert a[name] == b[name], name


def test_threads_per_process_share_the_cores_out(monkeypatch):
    from fer_hybrid import keras_io

    monkeypatch.setattr(keras_io, "usable_cores", lambda: 2)
    assert batch.threads_per_process() == 2                         # one process: the live default
    assert batch.threads_per_process(workers=2) == 1                # local workers share the cores
    assert batch.threads_per_process(scheduler="tcp://h:8786") == 1  # a cluster's workers are processes too
    monkeypatch.setattr(keras_io, "usable_cores", lambda: 1)
    assert batch.threads_per_process() == 1
    assert batch.tf_thread_env(2) == {"TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "1"}
