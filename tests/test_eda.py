"""EDA on the bundled fixture: counts, figures, JSON, load times; CLI errors without a traceback."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from fer_hybrid import eda
from fer_hybrid.labels import FER2013_EMOTIONS

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "eda.py"


def test_run_eda_on_fixture(sample_tar, tmp_path):
    cache_before = os.environ.get("FER_HYBRID_CACHE")
    s = eda.run_eda(sample_tar, tmp_path / "eda", per_class=4, command="test")
    assert os.environ.get("FER_HYBRID_CACHE") == cache_before  # the temporary cache is undone
    for f in ("README.md", "eda.json", "counts.png", "samples.png", "mean_faces.png"):
        assert (tmp_path / "eda" / f).stat().st_size > 0
    assert s["counts_7"]["train"] == {**{c: 5 for c in FER2013_EMOTIONS}, "total": 35}
    assert [s["counts_7"][sp]["total"] for sp in ("train", "val", "test", "total")] == [35, 21, 14, 70]
    assert [s["counts_5"][sp]["total"] for sp in ("train", "val", "test", "total")] == [25, 15, 10, 50]
    assert s["load_times"]["first_load_s"] >= 0 and s["load_times"]["cached_load_s"] >= 0
    assert s["duplicates_7"]["train_in_val_or_test"] == 0
    assert json.loads((tmp_path / "eda" / "eda.json").read_text())["counts_5"] == s["counts_5"]
    md = (tmp_path / "eda" / "README.md").read_text()
    assert "| **total** | 35 | 21 | 14 | 70 |" in md and "| **total** | 25 | 15 | 10 | 50 |" in md
    assert "cached load" in md and "![mean faces](mean_faces.png)" in md


def test_mean_faces(sample_data):
    m = eda.mean_faces(sample_data)
    assert m.shape == (5, 48, 48) and m.dtype == np.float32
    np.testing.assert_allclose(m[2], sample_data.train.x[sample_data.train.y == 2].mean(axis=0), rtol=1e-5)


def test_cli_missing_data_exits_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FER2013_PATH"}
    res = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "o")], capture_output=True,
                         text=True, env=env, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "FER2013_PATH is not set" in res.stderr and "Kaggle" in res.stderr
    res = subprocess.run([sys.executable, str(SCRIPT), "--data", str(tmp_path / "nope.tar.gz"), "--out",
                          str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and "nope.tar.gz" in res.stderr
    assert not (tmp_path / "o").exists()
