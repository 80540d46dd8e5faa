"""Shipped model artifacts: where they live and the manifest that describes them.

``models/manifest.json`` maps each model name to its file, sha256, size, training command,
data source (with sha256), test metrics and report path. The models folder is ``$FER_HYBRID_MODELS``
or the ``models/`` folder beside the package in a source checkout.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from . import _atomic
from .evaluate import file_sha256

MANIFEST = "manifest.json"


def models_dir() -> Path:
    env = os.environ.get("FER_HYBRID_MODELS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "models"


def read_manifest(root: str | os.PathLike | None = None) -> dict:
    path = Path(root or models_dir()) / MANIFEST
    if not path.exists():
        return {"models": {}}
    return json.loads(path.read_text())


def update_manifest(name: str, artifact: str | os.PathLike, *, command: str, data: dict | None,
                    metrics: dict, weights: str | None, report: str | None = None,
                    root: str | os.PathLike | None = None, extra_files: list[str] | None = None) -> dict:
    """Record (or replace) one model's entry; the file's sha256 and size are computed here."""
    root = Path(root or models_dir())
    artifact = Path(artifact)
    manifest = read_manifest(root)
    try:
        shown = artifact.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = artifact.name
    entry = {
        "file": shown,
        "sha256": file_sha256(artifact),
        "bytes": artifact.stat().st_size,
        "weights": weights,
        "command": command,
        "data": data,
        "metrics": metrics,
        "report": report,
    }
    if extra_files:
        entry["extra_files"] = [{"file": Path(f).name, "sha256": file_sha256(f)} for f in extra_files]
    manifest.setdefault("models", {})[name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    _atomic.write_text(root / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return entry
