"""Atomic file writes: write to a temporary file in the same folder, fsync, then os.replace.

A reader never sees a half-written artifact; if the writer dies, the previous file stays intact.

Temporary files are named ``.NAME.tmp-<pid>-<random><suffix>`` beside the target ``NAME``, so they are
hidden, recognisable and attributable: a process killed with SIGKILL cannot remove its own, and the next
write to the same target (:func:`clean_stale`) removes the ones whose process no longer exists.
A target that is a symbolic link is written through: the file the link points at is replaced and the
link stays (:func:`resolve_target`). An existing target keeps its permission bits.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

TEMP_MARK = ".tmp-"


def resolve_target(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` should replace: ``path`` itself, or what it points at if it is a
    symbolic link (followed through every level; a dangling link gives its missing target)."""
    path = Path(path).expanduser()
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def temp_beside(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Create an empty ``.NAME.tmp-<pid>-<random><suffix>`` beside ``path`` (its folder is created) and
    return it. ``suffix`` defaults to the target's, so format-by-extension writers keep working."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-",
                               suffix=path.suffix if suffix is None else suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OverflowError, ValueError):
        return False
    return True


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)" + re.escape(TEMP_MARK) + r"(?P<pid>\d+)-")


def stale_temps(*paths: str | os.PathLike) -> list[Path]:
    """Temporary files of the targets ``paths`` (see module doc) left by processes that no longer exist.
    Each folder is listed once, however many of its files are given."""
    wanted: dict[Path, set[str]] = {}
    for p in map(Path, paths):
        wanted.setdefault(p.parent, set()).add(p.name)
    out = []
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            m = _TEMP_NAME.match(e.name)
            if not m or m.group("name") not in names:
                continue
            pid = int(m.group("pid"))
            if pid != os.getpid() and e.is_file(follow_symlinks=False) and not _pid_alive(pid):
                out.append(Path(e.path))
    return sorted(out)


def clean_stale(*paths: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of the targets ``paths`` left by dead processes (e.g. killed with SIGKILL);
    returns them."""
    removed = []
    for p in stale_temps(*paths):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def target_mode(path: str | os.PathLike) -> int:
    """The existing file's permission bits, else 0666 minus the process umask."""
    try:
        return Path(path).stat().st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def publish(tmp: str | os.PathLike, path: str | os.PathLike, fsync: bool = True) -> Path:
    """fsync ``tmp``, give it ``path``'s mode (mkstemp creates 0600) and rename it onto ``path``."""
    tmp, path = Path(tmp), Path(path)
    if fsync:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.chmod(tmp, target_mode(path))
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` defaults to the target's suffix, so writers that infer the format from the
    extension (Keras ``.keras``, XGBoost ``.ubj``, matplotlib ``.png``) keep working. A symlink
    ``path`` is written through (its target is replaced); temp files of dead writers are removed first.
    """
    path = resolve_target(path)
    clean_stale(path)
    tmp_path = temp_beside(path, suffix)
    try:
        yield tmp_path
        publish(tmp_path, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike, error: type[Exception], what: str = "JSON file"):
    """Parse a JSON file; ``error`` (one line naming the file) when it is missing or unreadable."""
    import json

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not readable JSON ({e})") from None

