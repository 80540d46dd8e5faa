"""Student width timing (fer_hybrid.evaluation.width_timing, experiments/bench_width.py) on tiny networks."""
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.cnn.vggbn import parse_widths
from fer_hybrid.evaluation import width_timing as W

ROOT = Path(__file__).resolve().parents[1]


def test_parse_widths_round_trip_and_errors():
    assert parse_widths("64-128-256-512") == (64, 128, 256, 512)
    assert W.width_name(parse_widths("8-16")) == "vggbn 8-16"
    for bad in ["", "64-x", "64--128", "0-8", "-8"]:
        with pytest.raises(ValueError, match="positive integers"):
            parse_widths(bad)


def test_gflop_known_answers():
    # one 3x3 conv, 1 -> 1 channel, on a 2x2 face: 9 multiply-adds per pixel, 4 pixels, 2 FLOP each
    assert W.vggbn_gflop((1,), size=2, convs_per_block=1, views=1) == pytest.approx(72e-9)
    # the mirror doubles the work; wider networks cost more
    assert W.vggbn_gflop((48, 96), views=2) == pytest.approx(2 * W.vggbn_gflop((48, 96), views=1))
    assert W.vggbn_gflop((64, 128, 256, 512)) > W.vggbn_gflop((48, 96, 192, 384))


def test_time_widths_rows_reference_and_no_temp_files_left():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "fer_width_*")))
    calls = []

    def reference(x):
        calls.append(np.asarray(x).shape)
        return np.full((len(x), 5), 0.2, np.float32)

    rows = W.time_widths([(4, 8)], threads=1, repeats=2, calls=3, reference={"ref": reference})
    assert [r["name"] for r in rows] == ["vggbn 4-8", "ref"]
    tiny = rows[0]
    assert tiny["widths"] == [4, 8] and tiny["params"] > 0 and tiny["gflop_per_face"] > 0
    assert len(tiny["blocks_ms"]) == 2 and tiny["ms_per_face"] == pytest.approx(np.median(tiny["blocks_ms"]))
    assert tiny["within_bar"] == (tiny["ms_per_face"] <= W.BAR_MS)
    assert rows[1]["params"] is None and len(calls) == 2 * (3 + 5)  # 2 blocks of 5 warm-up + 3 timed calls
    assert calls[0][0] == 1  # batch 1
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "fer_width_*"))) == before
    md = W.width_markdown({"name": "bench-width", "threads": 1, "repeats": 2, "calls": 3, "rows": rows})
    assert "| vggbn 4-8 | 2 (flip TTA) |" in md and "| ref | as shipped | - | - |" in md and "≤ 8 ms" in md


def test_time_widths_single_view_runs_the_bare_network_at_half_the_flops():
    rows = W.time_widths([(4, 8)], threads=1, repeats=1, calls=2, views=1)
    assert len(rows) == 1 and rows[0]["views"] == 1 and rows[0]["runtime"] == "onnxruntime, single view"
    assert rows[0]["gflop_per_face"] == pytest.approx(W.vggbn_gflop((4, 8), views=1))
    md = W.width_markdown({"name": "bench-width", "threads": 1, "repeats": 1, "calls": 2, "rows": rows})
    assert "| vggbn 4-8 | 1 |" in md


def test_time_widths_rejects_other_view_counts():
    with pytest.raises(ValueError, match="views must be 1"):
        W.time_widths([(4, 8)], threads=1, views=3)


def test_bench_width_script_bad_widths_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_width.py"), "--widths", "64-x",
                        "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "positive integers" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_bench_width_script_writes_report(tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_width.py"), "--widths", "4-8",
                        "--reference", "none", "--repeats", "1", "--calls", "2", "--threads", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "benchmark.json").read_text())
    assert [row["name"] for row in rep["rows"]] == ["vggbn 4-8"]
    assert rep["threads"] == 1 and "nothing paused" in rep["conditions"]
    assert "| vggbn 4-8 |" in (out / "benchmark.md").read_text()
