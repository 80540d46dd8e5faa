"""Ranking synthetic reports with fer_hybrid.compare (library, files written, CLI errors)."""
import csv
import json
import subprocess
import sys

import pytest

from fer_hybrid import compare
from fer_hybrid.reports import ReportError


def _report(name, train, val, test, kind="cnn", **extra):
    r = {"schema": 1, "name": name, "kind": kind, "weights": None,
         "metrics": {"train": {"accuracy": train}, "val": {"accuracy": val},
                     "test": {"accuracy": test, "macro_f1": test - 0.05, "n": 2908}},
         "seconds_per_epoch": 30.0 if kind == "cnn" else None, "ms_per_face": 2.5, "params": 1_234_567,
         "artifact": None, "command": f"python experiments/{name}.py"}
    r.update(extra)
    return r


def _write(root, report, sub=None):
    d = root / (sub or report["name"])
    d.mkdir(parents=True, exist_ok=True)
    (d / "report.json").write_text(json.dumps(report))
    return d / "report.json"


@pytest.fixture
def reports_dir(tmp_path):
    _write(tmp_path, _report("overfit", 0.95, 0.60, 0.61, epochs=12))
    _write(tmp_path, _report("best", 0.72, 0.70, 0.71, weights="imagenet"))
    _write(tmp_path, _report("floor", 0.50, 0.45, 0.44, kind="landmarks"), sub="nested/floor")
    return tmp_path


def test_ranking_order_and_delta(reports_dir):
    rows = compare.ranking_table(compare.load_reports(reports_dir))
    assert [r["model"] for r in rows] == ["best", "overfit", "floor"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[1]["delta"] == pytest.approx(0.35)
    assert rows[1]["epochs"] == 12 and rows[0]["epochs"] is None
    assert rows[0]["weights"] == "imagenet" and rows[1]["weights"] == "none (random init)"
    assert rows[2]["weights"] == "–" and rows[2]["path"] == "nested/floor/report.json"
    assert rows[0]["n"] == 2908 and rows[0]["macro_f1"] == pytest.approx(0.66)
    by_val = compare.ranking_table(compare.load_reports(reports_dir), sort="val")
    assert [r["model"] for r in by_val] == ["best", "overfit", "floor"]
    with pytest.raises(ValueError, match="sort"):
        compare.ranking_table([], sort="train")


def test_sort_by_val_differs_from_test(tmp_path):
    _write(tmp_path, _report("a", 0.8, 0.70, 0.60))
    _write(tmp_path, _report("b", 0.8, 0.60, 0.65))
    reports = compare.load_reports(tmp_path)
    assert [r["model"] for r in compare.ranking_table(reports)] == ["b", "a"]
    assert [r["model"] for r in compare.ranking_table(reports, sort="val")] == ["a", "b"]


def test_markdown_rows_and_columns(reports_dir):
    rows = compare.ranking_table(compare.load_reports(reports_dir))
    md = compare.to_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0] == ("| Rank | Model | Kind | Weights | Train | Val | Delta (train−val) | Test | n | macro-F1 "
                        "| Epochs | s/epoch | ms/face | Params |")
    assert len(lines) == 2 + 3
    assert lines[2].startswith("| 1 | best | cnn | imagenet | 0.7200 | 0.7000 | +0.0200 | 0.7100 | 2908 | 0.6600 |")
    assert "| 2 | overfit |" in lines[3] and "+0.3500" in lines[3] and "| 12 |" in lines[3]
    assert "| 3 | floor | landmarks |" in lines[4] and "1.23 M" in lines[4]
    assert "FER+" not in md


def test_ferplus_column_only_when_present(tmp_path):
    _write(tmp_path, _report("a", 0.8, 0.7, 0.6))
    b = _report("b", 0.8, 0.7, 0.65)
    b["metrics"]["test_ferplus"] = {"accuracy": 0.8123}
    _write(tmp_path, b)
    md = compare.to_markdown(compare.ranking_table(compare.load_reports(tmp_path)))
    assert "| FER+ test |" in md and "0.8123" in md
    assert md.splitlines()[3].split(" | ")[10] == "–"  # row a has no FER+ number


def test_write_comparison_files(reports_dir, tmp_path):
    rows, paths = compare.write_comparison(reports_dir)
    assert {p.name for p in paths.values()} == {"comparison.md", "comparison.csv", "comparison.png"}
    assert all(p.parent == reports_dir for p in paths.values())
    md = paths["md"].read_text()
    assert compare.to_markdown(rows) in md and "study (GPU, pretrained)" in md and "comparison.png" in md
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [r["model"] for r in table] == ["best", "overfit", "floor"]
    assert float(table[1]["delta_train_val"]) == pytest.approx(0.35) and table[2]["seconds_per_epoch"] == ""
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    # a second run must not pick up its own outputs, and --out-dir writes elsewhere
    rows2, paths2 = compare.write_comparison(reports_dir, tmp_path / "out", sort="val")
    assert len(rows2) == 3 and paths2["md"].parent == tmp_path / "out"


def test_errors(tmp_path):
    with pytest.raises(ReportError, match="no report.json"):
        compare.load_reports(tmp_path)
    with pytest.raises(FileNotFoundError):
        compare.load_reports(tmp_path / "missing")
    bad = _report("bad", 0.8, 0.7, 0.6)
    bad["metrics"]["test"]["accuracy"] = "0.6"
    _write(tmp_path, bad)
    with pytest.raises(ReportError, match="bad/report.json: metrics.test.accuracy must be a number"):
        compare.ranking_table(compare.load_reports(tmp_path))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "fer_hybrid.compare", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_bad_report_exits_2_without_traceback(reports_dir):
    r = _report("broken", 0.8, 0.7, 0.6)
    del r["metrics"]["test"]["n"]
    path = _write(reports_dir, r)
    res = _cli(reports_dir)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert str(path) in res.stderr and "metrics.test.n" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    path.write_text("{broken json")
    res = _cli(reports_dir)
    assert res.returncode == 2 and "Traceback" not in res.stderr and str(path) in res.stderr


def test_cli_empty_dir_exits_2(tmp_path):
    res = _cli(tmp_path)
    assert res.returncode == 2 and "no report.json" in res.stderr and "Traceback" not in res.stderr


def test_main_prints_table(reports_dir, capsys):
    assert compare.main([str(reports_dir), "--sort", "test"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | best |" in out and "comparison.md" in out
    assert (reports_dir / "comparison.csv").exists()


def test_update_readme_replaces_only_the_marked_block(tmp_path):
    from fer_hybrid.compare import README_BEGIN, README_END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold table\n{README_END}\noutro\n")
    rows = [{"rank": 1, "model": "m1", "kind": "cnn", "weights": None, "train": 0.9, "val": 0.8, "delta": 0.1,
             "test": 0.75, "n": 10, "macro_f1": 0.7, "epochs": 3, "seconds_per_epoch": 1.0, "ms_per_face": 1.0,
             "params": 10}]
    update_readme(readme, rows)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old table" not in text and "| m1 |" in text.replace("**", "")


def test_update_readme_without_markers_is_a_clear_error(tmp_path):
    from fer_hybrid.compare import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="compare:begin"):
        update_readme(readme, [])


def test_benchmark_reports_are_listed_apart_never_ranked(reports_dir):
    _write(reports_dir, _report("inframe-best", None, 0.52, 0.50, benchmark="inframe", model="best"))
    _write(reports_dir, _report("calibration-best", None, 0.70, 0.71, calibration={"T": 1.2}, model="best"))  # older: no field
    rows, paths = compare.write_comparison(reports_dir)
    assert [r["model"] for r in rows] == ["best", "overfit", "floor"]
    bench = compare.benchmark_rows(compare.load_reports(reports_dir))
    assert [(b["name"], b["benchmark"], b["model"], b["test"]) for b in bench] == [
        ("calibration-best", "calibration", "best", 0.71), ("inframe-best", "inframe", "best", 0.50)]
    md = paths["md"].read_text()
    ranked, apart = md.split("## Benchmarks (not ranked)")
    assert "inframe-best" not in ranked and "[inframe-best](inframe-best/report.md) | inframe | best" in apart
