"""Command-line parsing shared by every ``python -m fer_hybrid.*`` tool: one-line errors.

argparse prints the whole usage block before an error; a user who typed one bad value wants the one line
that says which. :class:`OneLineParser` prints ``error: <what> (see --help)`` and exits 2.
"""
from __future__ import annotations

import argparse
import math

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors ('error: argument --x: ...', exit 2) instead of usage + error."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def number_arg(kind: type, lo: float, hi: float, *, lo_open: bool = False, also: tuple = (), text: str = ""):
    """argparse type: a finite ``kind`` (int or float) in [lo, hi] (or (lo, hi] with ``lo_open``) or in ``also``."""
    what = text or (f"{'an integer' if kind is int else 'a number'} in {'(' if lo_open else '['}{lo:g}, {hi:g}]")

    def parse(s: str):
        try:
            v = kind(s.strip())
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None
        if v in also:
            return v
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}")
        return v

    parse.__name__ = kind.__name__
    return parse


def rescue_arg(s: str) -> float | str | None:
    """argparse type of ``--rescue-threshold``: auto, none, or a number in [-2, 0)."""
    if s.strip().lower() in ("auto", "none"):
        return None if s.strip().lower() == "none" else "auto"
    try:
        v = float(s)
    except ValueError:
        v = float("nan")
    if not -2.0 <= v < 0.0:
        raise argparse.ArgumentTypeError(f"must be auto, none or a number in [-2, 0), got {s!r}")
    return v
