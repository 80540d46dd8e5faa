"""Re-evaluate shipped models on FER2013-5 and check they reproduce their recorded accuracy exactly.

    python -m fer_hybrid.verify [--models vggbn landmarks ...] [--data PATH] [--out DIR]

Before anything is evaluated: ``--out`` must be a writable folder, the manifest must be well formed, every
model file (and the extra files the manifest lists) must match the manifest's sha256, and the data must
load. Then each model is loaded through the registry (:func:`fer_hybrid.predictors.load_predictor`) and
its ``predict_proba`` runs on the split's 48x48 faces: exactly what the registry runs, with the TTA the
manifest gives it, nothing added here. A model reproduces when its number of correctly classified images
differs from the recorded one by at most ``--max-images`` (default 1). ``--report DIR`` also checks a
report of a shipped Keras model evaluated with another TTA policy (run as ``Analyzer(model, tta=...)``
runs it).

Exit codes: 0 every model reproduced, 1 one did not, 2 could not run (bad option, unwritable ``--out``,
malformed manifest, missing/corrupt/mismatched file, no data). Works from any directory: report paths in
the manifest are read relative to the repository holding the models folder. Results go to
``experiments/reports/verify-shipped/`` of that repository (JSON + Markdown), or ``--out``.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _atomic
from .artifacts import models_dir, read_manifest, report_tta
from .errors import ArtifactError, ArtifactMissingError
from .cli_args import OneLineParser

CHUNK = 256  # faces per predict_proba call (bounds memory for the big VGG nets)


class VerifyError(Exception):
    """verify cannot run (exit code 2); the message is one line naming the problem."""


def predict_chunked(predict_proba, faces: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(n, 5) probabilities from ``predict_proba`` applied to (n, 48, 48) faces in chunks."""
    parts = [np.asarray(predict_proba(faces[i:i + chunk]), np.float64) for i in range(0, len(faces), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 5))


def correct_count(y: np.ndarray, proba: np.ndarray) -> int:
    """Images whose arg-max is the label; a NaN row (no answer) counts as wrong, as in the reports."""
    proba = np.asarray(proba, np.float64)
    answered = np.isfinite(proba).all(axis=1)
    return int(((np.nan_to_num(proba, nan=-1.0).argmax(axis=1) == np.asarray(y)) & answered).sum())


def evaluate(predictor, data, split: str = "test") -> dict:
    """{"n", "correct", "accuracy", "macro_f1"} of ``predictor.predict_proba`` on a split."""
    from .evaluate import metrics_from_proba

    part = data.split(split)
    proba = predict_chunked(predictor.predict_proba, part.x)
    metrics = metrics_from_proba(part.y, proba)
    n = int(len(part.y))
    return {"n": n, "correct": correct_count(part.y, proba), "accuracy": float(metrics["accuracy"]),
            "macro_f1": float(metrics["macro_f1"])}


def compare(row: dict, recorded_accuracy: float, max_images: int) -> dict:
    """``row`` (from :func:`evaluate`) with the recorded figures, the difference in images and ``ok``."""
    recorded = int(round(float(recorded_accuracy) * row["n"]))
    return {**row, "recorded": float(recorded_accuracy), "recorded_correct": recorded, "reevaluated": row["accuracy"],
            "delta": row["accuracy"] - float(recorded_accuracy), "delta_images": row["correct"] - recorded,
            "ok": abs(row["correct"] - recorded) <= max_images}


def to_markdown(rows: Sequence[dict], max_images: int) -> str:
    lines = ["# Shipped models re-evaluated", "",
             "Each shipped model loaded through the predictor registry (files checked against the manifest's "
             "sha256) and run exactly as the registry runs it, TTA included; pass when the number of correctly "
             f"classified images differs from the recorded one by at most {max_images}.", "",
             "| model | report | TTA | split | n | recorded acc | re-evaluated acc | delta (images) | sha256 | pass |",
             "|---|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['report']} | {r['tta']} | {r['split']} | {r['n']} | {r['recorded']:.4f} | "
                     f"{r['reevaluated']:.4f} | {r['delta_images']:+d} | {r['sha256']} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Checks before any evaluation
# ---------------------------------------------------------------------------------------------
def default_out(root: Path) -> Path:
    """``experiments/reports/verify-shipped`` of the repository holding ``root``, else ``./verify-shipped``."""
    reports = root.resolve().parent / "experiments" / "reports"
    return reports / "verify-shipped" if reports.is_dir() else Path.cwd() / "verify-shipped"


def check_writable(out: Path) -> Path:
    """Create ``out`` if needed and prove a file can be written there; VerifyError otherwise."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".verify-write-test-"):
            pass
    except OSError as e:
        raise VerifyError(f"--out {out}: cannot write there ({e.strerror or e})") from None
    return out


def _report_name(report: str | None, root: Path) -> str | None:
    if not report:
        return None
    path = root.resolve().parent / report
    try:
        return json.loads(path.read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return Path(report).parent.name or None


def _read_report(path: Path) -> dict:
    path = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VerifyError(f"--report {path}: not a readable report ({e})") from None
    if not isinstance(report, dict) or not isinstance(report.get("metrics", {}).get("test", {}).get("accuracy"), float):
        raise VerifyError(f"--report {path}: no metrics.test.accuracy")
    return report


def targets(names: Sequence[str] | None, reports: Sequence[str] | None, root: Path, split: str) -> list[dict]:
    """What to check: [{"model", "report", "tta" (None: the registry's), "recorded"}]. VerifyError for an
    unknown or unshipped name, a model without a recorded ``split`` accuracy, or an unusable --report."""
    from .predictors import model_spec

    models = read_manifest(root).get("models", {})
    shipped = sorted(n for n, e in models.items() if "sha256" in e)
    names = list(names) if names else shipped
    unknown = [n for n in names if n not in shipped]
    if unknown:
        raise VerifyError(f"not shipped: {', '.join(unknown)}; shipped models: {', '.join(shipped)}")
    out = []
    for n in names:
        acc = ((models[n].get("metrics") or {}).get(split) or {}).get("accuracy")
        if acc is None:
            raise VerifyError(f"{root / 'manifest.json'}: model {n!r} has no recorded {split} accuracy")
        out.append({"model": n, "report": _report_name(models[n].get("report"), root), "tta": None, "recorded": acc})
    for extra in reports or []:
        report = _read_report(Path(extra))
        artifact = (report.get("artifact") or {}).get("path", "")
        owner = [n for n in shipped if artifact.endswith(models[n]["file"])]
        if not owner:
            raise VerifyError(f"--report {extra}: its artifact {artifact!r} is not a shipped model")
        if model_spec(owner[0], root).loader != "keras":
            raise VerifyError(f"--report {extra}: another TTA policy applies to a Keras model only")
        out.append({"model": owner[0], "report": report.get("name"), "tta": report_tta(report),
                    "recorded": report["metrics"][split]["accuracy"]})
    return out


def load_for(target: dict, root: Path):
    """The predictor the registry runs (target tta None), or its network under the report's TTA policy."""
    from .predictors import KerasPredictor, load_predictor

    predictor = load_predictor(target["model"], root)
    if target["tta"] is None or target["tta"] == getattr(predictor, "tta", None):
        return predictor
    return KerasPredictor(predictor.model, predictor.name, tta=target["tta"])


def run(args) -> int:
    from .data import DataError, load_fer2013
    from .evaluate import command_line, environment
    from .predictors import check_artifact, model_spec

    root = Path(args.models_dir) if args.models_dir else models_dir()
    if not (root / "manifest.json").is_file():
        raise VerifyError(f"{root}: no manifest.json; verify checks a models folder with a manifest")
    out = check_writable(Path(args.out) if args.out else default_out(root))
    todo = targets(args.models, args.report, root, args.split)
    checked = {}
    for t in todo:  # every file against the manifest's sha256, before anything runs
        if t["model"] not in checked:
            check_artifact(t["model"], root)
            spec = model_spec(t["model"], root)
            checked[t["model"]] = 1 + len(spec.extra_files)
    try:
        data = load_fer2013(args.data)
    except (OSError, DataError, ValueError) as e:
        raise VerifyError(f"data: {e}") from None

    rows = []
    for t in todo:
        predictor = load_for(t, root)
        row = compare(evaluate(predictor, data, args.split), t["recorded"], args.max_images)
        row.update(model=t["model"], report=t["report"], split=args.split, sha256=f"ok ({checked[t['model']]} files)",
                   tta=t["tta"] or getattr(predictor, "tta", None) or getattr(getattr(predictor, "cnn", None), "tta", "none"))
        rows.append(row)
        print(f"{row['model']:<14} {str(row['report']):<22} tta={row['tta']:<10} recorded {row['recorded']:.4f}  "
              f"re-evaluated {row['reevaluated']:.4f}  delta {row['delta_images']:+d} images  "
              f"{'ok' if row['ok'] else 'FAIL'}", flush=True)
    result = {"rows": rows, "max_images": args.max_images, "command": command_line(), "environment": environment()}
    _atomic.write_text(out / "verify.json", json.dumps(result, indent=2) + "\n")
    _atomic.write_text(out / "verify.md", to_markdown(rows, args.max_images) + f"\nCommand: `{result['command']}`\n")
    print(f"wrote {out / 'verify.md'}")
    return 0 if all(r["ok"] for r in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m fer_hybrid.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="model names (default: every shipped model in the manifest)")
    ap.add_argument("--report", action="append", help="also check this report (dir or report.json) of a shipped "
                                                      "Keras model evaluated with another TTA policy")
    ap.add_argument("--data", help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--max-images", type=int, default=1,
                    help="allowed difference in correctly classified images (default 1)")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: experiments/reports/verify-shipped of the models' repository)")
    args = ap.parse_args(argv)
    if args.max_images < 0:
        ap.error("--max-images must be >= 0")
    try:
        return run(args)
    except (VerifyError, ArtifactError, ArtifactMissingError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
