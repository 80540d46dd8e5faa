"""Determinism: the same input gives the same probabilities in two processes, and no smoothing state
leaks from one source into the next one processed in the same process."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from test_realtime import FACE, ROOT, TINY, face_frames, read_jsonl, write_video  # noqa: E402

from fer_hybrid import realtime  # noqa: E402
from fer_hybrid.predictors import load_predictor  # noqa: E402

CHILD = textwrap.dedent("""
    import json, os, shutil, sys, tempfile
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.path.insert(0, "tests")
    import numpy as np
    from test_realtime import FACE, TINY, face_frames
    import cv2
    from fer_hybrid import realtime
    d = tempfile.mkdtemp()
    shutil.copy(TINY, os.path.join(d, "vggbn.keras"))
    p = realtime.load_model("vggbn", d)
    gray = cv2.cvtColor(cv2.imread(str(FACE)), cv2.COLOR_BGR2GRAY)
    crops = [gray, gray[::-1], np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8)]
    runner = realtime.RealtimeRunner(p, detect_every=3, smoothing=0.5)
    faces = [runner.process(f) for f in face_frames(6)]
    out = {"crops": p.predict_proba(crops).astype(float).tolist(),
           "runner": [[{"id": r.id, "box": r.box.tolist(), "proba": r.proba.tolist(),
                        "smoothed": r.smoothed.tolist()} for r in fr] for fr in faces]}
    print(json.dumps(out))
""")


def test_same_input_same_probabilities_in_two_processes():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    a, b = outs
    assert np.array(a["crops"]).shape == (3, 5)
    np.testing.assert_allclose(a["crops"], b["crops"], rtol=0, atol=1e-7)
    assert [len(f) for f in a["runner"]] == [1] * 6
    for fa, fb in zip(a["runner"], b["runner"]):
        for x, y in zip(fa, fb):
            assert x["id"] == y["id"] and x["box"] == y["box"]
            np.testing.assert_allclose(x["proba"], y["proba"], rtol=0, atol=1e-7)
            np.testing.assert_allclose(x["smoothed"], y["smoothed"], rtol=0, atol=1e-7)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import shutil

    d = tmp_path_factory.mktemp("models")
    shutil.copy(TINY, d / "vggbn.keras")
    return d


def two_sources() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A: the face; B: the face mirrored and darker at the same places (other probabilities, overlapping boxes)."""
    a = face_frames(6)
    face = cv2.imread(str(FACE))
    b = []
    for f in a:
        g = f.copy()
        ys, xs = np.where((f != 90).any(axis=2))
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        g[y0:y1, x0:x1] = (face[:, ::-1] * 0.7).astype(np.uint8)[: y1 - y0, : x1 - x0]
        b.append(g)
    return a, b


def snapshot(results) -> list:
    return [[(r.id, r.box.tolist(), r.proba.round(7).tolist(), r.smoothed.round(7).tolist()) for r in fr]
            for fr in results]


def test_runner_reset_leaves_no_state_from_the_previous_source(models):
    p = load_predictor("vggbn", models)
    a, b = two_sources()
    r = realtime.RealtimeRunner(p, detect_every=3, smoothing=0.5)
    fresh = snapshot([r.process(f) for f in b])
    r = realtime.RealtimeRunner(p, detect_every=3, smoothing=0.5)
    for f in a:
        r.process(f)
    leaked = snapshot([r.process(f) for f in b])
    assert leaked != fresh  # without reset the track (and its EMA) continues: the test can see a leak
    r = realtime.RealtimeRunner(p, detect_every=3, smoothing=0.5)
    for f in a:
        r.process(f)
    r.reset()
    assert snapshot([r.process(f) for f in b]) == fresh


def test_cli_runs_in_one_process_do_not_share_state(tmp_path, models):
    a, b = two_sources()
    va, vb = write_video(tmp_path / "a.mp4", a), write_video(tmp_path / "b.mp4", b)

    def run(video, name):
        out = tmp_path / f"{name}.jsonl"
        assert realtime.main(["--source", str(video), "--jsonl", str(out), "--models-dir", str(models),
                              "--no-display"]) == 0
        return read_jsonl(out)

    first_b = run(vb, "b1")
    run(va, "a")
    assert run(vb, "b2") == first_b  # same ids, boxes, probabilities and smoothed probabilities
    assert all(len(row["faces"]) == 1 for row in first_b)
