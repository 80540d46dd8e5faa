"""Every accuracy-like figure in the README (0.dddd) is a value of a committed report or manifest entry.

README prose is written by hand; this test is what keeps it honest: a figure typed wrong, rounded up or
left stale after a report changed fails here, naming the figure and its line.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"(?<![\d.])0\.\d{4}(?!\d)")


def _numbers(obj, out: set[str]) -> None:
    if isinstance(obj, bool):
        return
    if isinstance(obj, float):
        out.add(f"{abs(obj):.4f}")  # the README writes the sign apart (−0.0016, +0.0031)
    elif isinstance(obj, dict):
        for v in obj.values():
            _numbers(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _numbers(v, out)


def recorded_values() -> set[str]:
    from fer_hybrid.compare import STUDY_REFERENCE

    out = {f"{v:.4f}" for v in STUDY_REFERENCE.values()}
    files = [*sorted((ROOT / "experiments" / "reports").rglob("*.json")), ROOT / "models" / "manifest.json"]
    for f in files:
        try:
            _numbers(json.loads(f.read_text()), out)
        except (OSError, ValueError):
            continue
    return out


def unknown_figures(text: str, known: set[str]) -> list[tuple[int, str]]:
    """(line number, figure) of every 0.dddd in ``text`` that is not in ``known``."""
    return [(i, m) for i, line in enumerate(text.splitlines(), 1) for m in FIGURE.findall(line) if m not in known]


def prose(readme: str) -> str:
    """The README without the block that ``python -m fer_hybrid.compare --readme`` generates (its deltas are
    computed there); the block's lines are kept blank so line numbers stay right."""
    from fer_hybrid.compare import README_BEGIN, README_END

    head, rest = readme.split(README_BEGIN, 1)
    block, tail = rest.split(README_END, 1)
    return head + "\n" * block.count("\n") + tail


def test_every_accuracy_figure_in_the_readme_comes_from_a_committed_report():
    missing = unknown_figures(prose((ROOT / "README.md").read_text()), recorded_values())
    assert not missing, "README figures found in no report: " + ", ".join(f"{m} (line {i})" for i, m in missing)


def test_the_check_catches_a_typed_figure_and_reads_the_reports():
    text = "default test 0.7311, typed 0.7319; version 10.12345 and 1.0000 are not accuracies"
    assert unknown_figures(text, {"0.7311"}) == [(1, "0.7319")]
    known = recorded_values()
    assert {"0.7311", "0.7423", "0.7494"} <= known  # the default's test and val (its report), the study's VGGFace
