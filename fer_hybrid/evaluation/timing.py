"""Quiet timing on a shared machine: pause one named background process while a measurement runs.

>>> with paused("/tmp/fer_training.pid"):          # SIGSTOP that pid for the block, SIGCONT always
...     ms = ms_per_face(predictor.predict_proba, face)
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path


@contextlib.contextmanager
def paused(pid_file: str | os.PathLike | None):
    """SIGSTOP the process whose pid is the first word of ``pid_file`` for the block; SIGCONT always, even
    when the block raises. Yields that pid, or None when nothing was paused: no ``pid_file``, the file does not
    exist, or its pid is unreadable / gone / not ours (a one-line warning on stderr, the block still runs)."""
    pid = None
    if pid_file and Path(pid_file).exists():
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGSTOP)
        except (ValueError, IndexError, ProcessLookupError, PermissionError) as e:
            print(f"warning: not pausing pid from {pid_file}: {e}", file=sys.stderr)
            pid = None
    try:
        yield pid
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
