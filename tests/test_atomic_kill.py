"""A writer killed mid-way (subprocess + SIGKILL) leaves the previous report / .keras model intact.

Complements tests/test_reports.py::test_atomic_write_killed_midway_keeps_previous_file (bare
``_atomic.atomic_path``) with the real writers: :func:`fer_hybrid.reports.write_report` and
:func:`fer_hybrid.cnn.train.save_model`. Two ways to kill:

* deterministic: the child blocks in ``os.fsync`` - the new file is completely written to its temp name
  but not yet renamed - and is killed there;
* at a random moment while the child rewrites the target in a loop; the target must then be exactly
  one of the complete versions.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid import reports as rp

TINY = Path(__file__).parent / "data" / "tiny_cnn.keras"
ROOT = Path(__file__).resolve().parents[1]

BLOCK_IN_FSYNC = textwrap.dedent("""
    import os, sys, time
    def _blocked_fsync(fd):  # the temp file is complete here; os.replace has not happened yet
        print("inside", flush=True)
        time.sleep(120)
    os.fsync = _blocked_fsync
""")

REPORT_CHILD = textwrap.dedent("""
    import json, sys
    from fer_hybrid import reports as rp
    base = json.loads(open(sys.argv[1]).read())
    out = sys.argv[2]
    i = 0
    while True:
        i += 1
        r = dict(base, name=f"version-{i}", notes="x" * 20000)
        rp.write_report(r, out)
        if i == 1:
            print("ready", flush=True)
""")

KERAS_CHILD = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras
    from fer_hybrid.cnn.train import save_model
    model = keras.models.load_model(sys.argv[1], compile=False)
    w0 = model.get_weights()
    i = 0
    print("loaded", flush=True)
    while True:
        i += 1
        model.set_weights([w + i for w in w0])  # version i: every weight shifted by i
        save_model(model, sys.argv[2])
        if i == 1:
            print("ready", flush=True)
""")


def base_report() -> dict:
    return {"schema": 1, "name": "version-0", "kind": "cnn", "weights": None,
            "metrics": {"train": {"accuracy": 0.5}, "val": {"accuracy": 0.4},
                        "test": {"accuracy": 0.4, "macro_f1": 0.3, "n": 10}},
            "seconds_per_epoch": 1.0, "ms_per_face": 1.0, "params": 10, "artifact": None, "command": "x"}


def start(code: str, *argv, block_fsync: bool = False) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    src = (BLOCK_IN_FSYNC if block_fsync else "") + code
    return subprocess.Popen([sys.executable, "-c", src, *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)


def wait_for(proc: subprocess.Popen, word: str, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        line = proc.stdout.readline()
        if line.strip() == word:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"child exited with {proc.returncode} before printing {word!r}")
    raise AssertionError(f"child did not print {word!r} within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    try:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.stdout.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# ------------------------------------------------------------------------------------------------ reports
@pytest.fixture
def previous_report(tmp_path) -> tuple[Path, Path]:
    out = tmp_path / "exp"
    rp.write_report(base_report(), out)
    src = tmp_path / "base.json"
    src.write_text(json.dumps(base_report()))
    return out, src


def test_report_writer_killed_before_rename_keeps_previous(previous_report):
    out, src = previous_report
    before = {f: (out / f).read_bytes() for f in ("report.json", "report.md")}
    proc = start(REPORT_CHILD, src, out, block_fsync=True)
    try:
        wait_for(proc, "inside")
        assert leftovers(out)  # the complete new report.md sits under its temp name ...
    finally:
        kill(proc)
    assert {f: (out / f).read_bytes() for f in before} == before  # ... but the published files are the old ones
    assert rp.read_report(out / "report.json")["name"] == "version-0"
    assert rp.find_reports(out.parent) == [out / "report.json"]  # a stray temp file is never taken for a report


def test_temp_files_of_a_killed_writer_name_its_pid_and_the_next_write_removes_them(previous_report):
    out, src = previous_report
    proc = start(REPORT_CHILD, src, out, block_fsync=True)
    try:
        wait_for(proc, "inside")
    finally:
        kill(proc)
    left = leftovers(out)
    assert left and all(n.startswith((".report.json.tmp-", ".report.md.tmp-")) and f".tmp-{proc.pid}-" in n
                        for n in left)  # recognisable: hidden, named after the target and the dead writer
    rp.write_report(base_report(), out)  # the next write of the same files cleans up after the dead one
    assert leftovers(out) == []
    assert rp.read_report(out / "report.json")["name"] == "version-0"


def test_report_writer_killed_at_random_moment_leaves_a_complete_report(previous_report):
    out, src = previous_report
    for delay in random.Random(0).sample([0.05, 0.13, 0.29, 0.41, 0.6], 2):
        proc = start(REPORT_CHILD, src, out)
        try:
            wait_for(proc, "ready")
            time.sleep(delay)
        finally:
            kill(proc)
        report = rp.read_report(out / "report.json")  # valid JSON with every required key
        assert report["name"].startswith("version-") and report["notes"] == "x" * 20000
        assert (out / "report.md").read_text().startswith("# version-")


# ------------------------------------------------------------------------------------------------ .keras
def load_weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def tiny_weights():
    return load_weights(TINY)


def test_keras_save_killed_before_rename_keeps_previous(tmp_path, tiny_weights):
    target = tmp_path / "vggbn.keras"
    shutil.copy(TINY, target)
    before = target.read_bytes()
    proc = start(KERAS_CHILD, TINY, target, block_fsync=True)
    try:
        wait_for(proc, "inside")
        (tmp,) = [tmp_path / n for n in leftovers(tmp_path)]
        assert tmp.stat().st_size > 1000  # the new model is written in full to the temp file
    finally:
        kill(proc)
    assert target.read_bytes() == before
    for a, b in zip(load_weights(target), tiny_weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # a second TensorFlow child process (~5 s, more under load)
def test_keras_save_killed_at_random_moment_leaves_a_loadable_model(tmp_path, tiny_weights):
    target = tmp_path / "vggbn.keras"
    shutil.copy(TINY, target)
    proc = start(KERAS_CHILD, TINY, target)
    try:
        wait_for(proc, "ready")
        time.sleep(random.Random(1).uniform(0.1, 0.8))
    finally:
        kill(proc)
    got = load_weights(target)  # loads: never half-written
    shift = float(np.mean(got[0] - tiny_weights[0]))
    assert shift == round(shift) and shift >= 1  # exactly one complete version i (weights + i)
    for a, b in zip(got, tiny_weights):
        np.testing.assert_allclose(a, b + shift, atol=1e-5)
