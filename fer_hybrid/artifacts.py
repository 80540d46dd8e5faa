"""Shipped model artifacts: where they live, and the manifest that describes them (core).

``manifest.json`` in a models folder maps each model name to what the registry needs to load it and what
it scored::

    {"default": "vggbn",
     "models": {"vggbn": {"kind": "cnn", "loader": "keras", "tta": "flip", "description": "...",
                          "train_command": "python experiments/...", "file": "vggbn.keras",
                          "sha256": "...", "bytes": 11101935, "weights": null, "command": "...",
                          "data": {...}, "metrics": {"test": {"accuracy": ...}}, "report": "...",
                          "ms_per_face": 4.29, "extra_files": [{"file": "...", "sha256": "..."}]}}}

An entry without ``sha256`` is registered but not shipped (its ``train_command`` makes it). ``loader`` is
one of :data:`LOADERS`; ``tta`` (keras loader only) is the test-time augmentation policy the registry runs
the network with, the one its recorded metrics were measured with.

:func:`models_dir` resolves the folder: ``$FER_HYBRID_MODELS`` (ArtifactMissingError when it is not a
folder), else the source checkout's ``models/`` beside the package, else the package data
``fer_hybrid/models`` of a non-editable install.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from . import _atomic
from .errors import ArtifactError, ArtifactMissingError
from .safe_io import file_sha256

MANIFEST = "manifest.json"
ENV = "FER_HYBRID_MODELS"
LOADERS = ("keras", "landmarks", "hybrid", "cnn_ensemble", "onnx")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------------------------------
# Where the models are
# ---------------------------------------------------------------------------------------------
def checkout_models_dir() -> Path:
    """``models/`` beside the package folder (a source checkout or an editable install)."""
    return _PACKAGE.parent / "models"


def package_models_dir() -> Path:
    """``fer_hybrid/models``: the models installed as package data by a non-editable install."""
    return _PACKAGE / "models"


def builtin_models_dir() -> Path | None:
    """The models that came with the code: the checkout's, else the package data's; None if neither has a
    manifest."""
    for d in (checkout_models_dir(), package_models_dir()):
        if (d / MANIFEST).is_file():
            return d
    return None


def models_dir() -> Path:
    """``$FER_HYBRID_MODELS`` if set (ArtifactMissingError unless it is an existing folder), else
    :func:`builtin_models_dir`, else the checkout path (so errors name where models were expected)."""
    env = os.environ.get(ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ArtifactMissingError(f"{ENV}={env}: no such folder; point it at a models folder "
                                       f"(with {MANIFEST}) or unset it to use the shipped models")
        return path
    return builtin_models_dir() or checkout_models_dir()


# ---------------------------------------------------------------------------------------------
# Validation: one function per file type (this one: manifest.json)
# ---------------------------------------------------------------------------------------------
def _type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def _field_error(path, field: str, expected: str, value) -> ArtifactError:
    return ArtifactError(f"{path}: field {field!r} must be {expected}, got {_type_name(value)} {value!r:.60}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_relative_file(path, field: str, value) -> str:
    """``value`` as a relative posix path that stays inside its folder; ArtifactError naming ``field``."""
    if not isinstance(value, str) or not value:
        raise _field_error(path, field, "a non-empty relative file name", value)
    p = PurePosixPath(value)
    if p.is_absolute() or ".." in p.parts:
        raise _field_error(path, field, "a file name inside the models folder (no absolute path, no '..')", value)
    return value


def check_sha(path, field: str, value) -> str:
    if not isinstance(value, str) or not _SHA.match(value):
        raise _field_error(path, field, "a sha256 (64 lowercase hex digits)", value)
    return value


def infer_loader(file: str) -> str:
    """The loader a file name implies: ``.keras`` -> keras, ``ensemble.json`` -> landmarks, ``hybrid.json``
    -> hybrid, ``.onnx`` -> onnx, another ``.json`` -> cnn_ensemble."""
    name = PurePosixPath(file).name
    if name.endswith(".keras"):
        return "keras"
    if name.endswith(".onnx"):
        return "onnx"
    if name == "ensemble.json":
        return "landmarks"
    if name == "hybrid.json":
        return "hybrid"
    if name.endswith(".json"):
        return "cnn_ensemble"
    raise ValueError(f"no loader for {file!r}")


def check_calibration(path, field: str, value) -> dict:
    """``{"temperature": T > 0, "bias": null | [numbers], "report": str | null}``; ArtifactError otherwise."""
    if not isinstance(value, dict):
        raise _field_error(path, field, "an object {temperature, bias, report}", value)
    t = value.get("temperature")
    if not _is_number(t) or not math.isfinite(t) or t <= 0:
        raise _field_error(path, f"{field}.temperature", "a finite number > 0", t)
    bias = value.get("bias")
    if bias is not None and (not isinstance(bias, list) or not bias
                             or not all(_is_number(b) and math.isfinite(b) for b in bias)):
        raise _field_error(path, f"{field}.bias", "null or a non-empty list of finite numbers", bias)
    if value.get("report") is not None and not isinstance(value["report"], str):
        raise _field_error(path, f"{field}.report", "a string or null", value["report"])
    return value


def validate_manifest(data, path) -> dict:
    """``data`` (parsed ``manifest.json`` at ``path``) if well formed; ArtifactError naming ``path`` and the
    field otherwise. Checks types of every known field, file names, sha256 strings, loader names, metric
    accuracies in [0, 1], and that ``default`` names an entry."""
    if not isinstance(data, dict):
        raise _field_error(path, "(top level)", "a JSON object", data)
    models = data.get("models")
    if not isinstance(models, dict):
        raise _field_error(path, "models", "an object {name: entry}", models)
    for name, e in models.items():
        f = f"models.{name}"
        if not isinstance(e, dict):
            raise _field_error(path, f, "an object", e)
        if "file" not in e:
            raise ArtifactError(f"{path}: field '{f}.file' is missing")
        check_relative_file(path, f"{f}.file", e["file"])
        if "sha256" in e:
            check_sha(path, f"{f}.sha256", e["sha256"])
        for key in ("kind", "description", "train_command", "command", "tta"):
            if key in e and not isinstance(e[key], str):
                raise _field_error(path, f"{f}.{key}", "a string", e[key])
        for key in ("weights", "report"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise _field_error(path, f"{f}.{key}", "a string or null", e[key])
        if "loader" in e and e["loader"] not in LOADERS:
            raise _field_error(path, f"{f}.loader", f"one of {', '.join(LOADERS)}", e["loader"])
        if "loader" not in e:
            try:
                infer_loader(e["file"])
            except ValueError:
                raise ArtifactError(f"{path}: field '{f}.loader' is missing and {e['file']!r} does not imply one "
                                    f"({', '.join(LOADERS)})") from None
        if "tta" in e and e.get("loader", infer_loader(e["file"])) != "keras":
            raise ArtifactError(f"{path}: field '{f}.tta' applies to the keras loader only (hybrid and ensemble "
                                "descriptors record their own tta)")
        if "bytes" in e and (not isinstance(e["bytes"], int) or isinstance(e["bytes"], bool) or e["bytes"] < 0):
            raise _field_error(path, f"{f}.bytes", "a non-negative integer", e["bytes"])
        if e.get("ms_per_face") is not None and (not _is_number(e["ms_per_face"]) or e["ms_per_face"] < 0):
            raise _field_error(path, f"{f}.ms_per_face", "a non-negative number or null", e["ms_per_face"])
        metrics = e.get("metrics", {})
        if not isinstance(metrics, dict):
            raise _field_error(path, f"{f}.metrics", "an object {split: {accuracy, ...}}", metrics)
        for split, m in metrics.items():
            if not isinstance(m, dict):
                raise _field_error(path, f"{f}.metrics.{split}", "an object", m)
            acc = m.get("accuracy")
            if acc is not None and (not _is_number(acc) or not 0 <= acc <= 1):
                raise _field_error(path, f"{f}.metrics.{split}.accuracy", "a number in [0, 1]", acc)
        if e.get("calibration") is not None:
            check_calibration(path, f"{f}.calibration", e["calibration"])
        extra = e.get("extra_files", [])
        if not isinstance(extra, list):
            raise _field_error(path, f"{f}.extra_files", "a list of {file, sha256}", extra)
        for i, x in enumerate(extra):
            if not isinstance(x, dict):
                raise _field_error(path, f"{f}.extra_files[{i}]", "an object {file, sha256}", x)
            check_relative_file(path, f"{f}.extra_files[{i}].file", x.get("file"))
            check_sha(path, f"{f}.extra_files[{i}].sha256", x.get("sha256"))
    default = data.get("default")
    if default is not None and (not isinstance(default, str) or default not in models):
        raise _field_error(path, "default", f"the name of an entry of 'models' ({', '.join(sorted(models))})", default)
    return data


def read_manifest(root: str | os.PathLike | None = None) -> dict:
    """The validated manifest of ``root`` (default :func:`models_dir`); ``{"models": {}}`` if it has none."""
    path = Path(root or models_dir()) / MANIFEST
    if not path.exists():
        return {"models": {}}
    return validate_manifest(_atomic.read_json(path, ArtifactError, "manifest"), path)


def beats_on_val(manifest: dict, name: str | None, val_accuracy: float) -> tuple[bool, float | None]:
    """Whether a model with ``val_accuracy`` (as run) should replace the manifest's entry ``name``: (decision,
    the entry's recorded val accuracy or None). It replaces it only when its val accuracy is higher, or when
    no val accuracy is recorded (absent entry); test is never compared."""
    old = manifest.get("models", {}).get(name, {}).get("metrics", {}).get("val", {}).get("accuracy")
    return old is None or val_accuracy > old, old


def entry_loader(entry: dict) -> str:
    return entry.get("loader") or infer_loader(entry["file"])


def entry_kind(entry: dict) -> str:
    return entry.get("kind") or {"keras": "cnn", "onnx": "cnn", "cnn_ensemble": "cnn"}.get(entry_loader(entry),
                                                                                          entry_loader(entry))


def _read_report(report: str | None, root: Path) -> dict:
    """A report (path relative to the repository = the models folder's parent, or to the cwd), or {}."""
    if not report:
        return {}
    for p in (root.resolve().parent / report, Path(report)):
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        return data if isinstance(data, dict) else {}
    return {}


def report_tta(report: dict) -> str:
    """The TTA policy a report's metrics were measured with outside the network: ``tta`` true -> "flip",
    a policy name -> that name, false / absent / evaluated as run (flip inside the graph) -> "none"."""
    tta = report.get("tta")
    if report.get("evaluated_as_run") or not tta:
        return "none"
    return "flip" if tta is True else str(tta)


MANIFEST_KEYS = ("accuracy", "macro_f1", "n")


def manifest_metrics(metrics: Mapping[str, Mapping], splits: Iterable[str] | None = None, *,
                     evaluated_only: bool = False) -> dict:
    """{split: {"accuracy", "macro_f1", "n"}} of ``metrics`` ({split: metrics dict}) for ``splits`` (default:
    every split of ``metrics``, in order). ``evaluated_only`` drops splits whose accuracy is None (never run).
    KeyError naming the split when a requested split or one of its three keys is missing."""
    out = {}
    for s in (list(metrics) if splits is None else splits):
        if s not in metrics:
            raise KeyError(f"no metrics for split {s!r} (have: {', '.join(metrics) or 'none'})")
        m = metrics[s]
        if evaluated_only and m.get("accuracy") is None:
            continue
        missing = [k for k in MANIFEST_KEYS if k not in m]
        if missing:
            raise KeyError(f"the {s!r} metrics lack {', '.join(missing)}")
        out[s] = {k: m[k] for k in MANIFEST_KEYS}
    return out


def update_manifest(name: str, artifact: str | os.PathLike, *, command: str, data: dict | None,
                    metrics: dict, weights: str | None, report: str | None = None,
                    root: str | os.PathLike | None = None, extra_files: list[str] | None = None,
                    kind: str | None = None, loader: str | None = None, description: str | None = None,
                    train_command: str | None = None, tta: str | None = None) -> dict:
    """Record (or replace) one model's entry; the file's sha256 and size are computed here. Registry fields
    not given: kind, loader and description keep the old entry's values, else are inferred from the file
    name; train_command is ``command``; ``tta`` (keras loader) and ``ms_per_face`` come from the report
    when it is readable (:func:`report_tta`), so the registry runs what the report measured."""
    root = Path(root or models_dir())
    artifact = Path(artifact)
    manifest = read_manifest(root)
    old = manifest.get("models", {}).get(name, {})
    try:
        shown = artifact.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = artifact.name
    entry = {
        "kind": kind or old.get("kind"),
        "loader": loader or old.get("loader") or infer_loader(shown),
        "description": description if description is not None else old.get("description", ""),
        "train_command": train_command or command,
        "file": shown,
        "sha256": file_sha256(artifact),
        "bytes": artifact.stat().st_size,
        "weights": weights,
        "command": command,
        "data": data,
        "metrics": metrics,
        "report": report,
    }
    rep = _read_report(report, root)
    ms = rep.get("ms_per_face")
    entry["ms_per_face"] = float(ms) if _is_number(ms) else None
    entry["kind"] = entry["kind"] or entry_kind(entry)
    if entry["loader"] == "keras":
        entry["tta"] = tta if tta is not None else report_tta(rep)
    if extra_files:
        entry["extra_files"] = [{"file": Path(f).name, "sha256": file_sha256(f)} for f in extra_files]
    manifest.setdefault("models", {})[name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    write_manifest(manifest, root)
    return entry


def write_manifest(manifest: dict, root: str | os.PathLike) -> Path:
    """Validate ``manifest`` and write it to ``root/manifest.json`` atomically; ArtifactError (file unchanged)
    when it is not well formed."""
    path = Path(root) / MANIFEST
    validate_manifest(manifest, path)
    return _atomic.write_text(path, json.dumps(manifest, indent=2) + "\n")


def set_default(name: str, root: str | os.PathLike | None = None) -> None:
    """Make ``name`` (an entry of the manifest) the model that ``--model default`` and ``Analyzer()`` load."""
    root = Path(root or models_dir())
    manifest = read_manifest(root)
    manifest["default"] = name
    write_manifest(manifest, root)  # ArtifactError when ``name`` is not an entry


def set_calibration(name: str, calibration: dict | None, root: str | os.PathLike | None = None) -> None:
    """Record (or, with None, remove) the calibration the Analyzer applies to ``name``'s probabilities:
    ``{"temperature": T, "bias": null | [k numbers], "report": "experiments/reports/..."}``."""
    root = Path(root or models_dir())
    manifest = read_manifest(root)
    if name not in manifest.get("models", {}):
        raise ArtifactError(f"{root / MANIFEST}: no model {name!r} to calibrate")
    if calibration is None:
        manifest["models"][name].pop("calibration", None)
    else:
        manifest["models"][name]["calibration"] = calibration
    write_manifest(manifest, root)
