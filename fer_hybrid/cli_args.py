"""Command-line parsing shared by every ``python -m fer_hybrid.*`` tool: one-line errors.

argparse prints the whole usage block before an error; a user who typed one bad value wants the one line
that says which. :class:`OneLineParser` prints ``error: <what> (see --help)`` and exits 2.
"""
from __future__ import annotations

import argparse

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors ('error: argument --x: ...', exit 2) instead of usage + error."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")
