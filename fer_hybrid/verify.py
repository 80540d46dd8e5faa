"""Re-evaluate shipped models on FER2013-5 and check they reproduce their recorded accuracy.

    python -m fer_hybrid.verify [--models vggbn landmarks ...] [--data PATH] [--tolerance 0.005]

Each model is loaded through the predictor registry exactly as the realtime runner loads it, run
on the split's 48x48 faces with the test-time augmentation its report records (``tta``: false,
true = horizontal flip, or a policy name from :mod:`fer_hybrid.cnn.tta`), and its accuracy is
compared with the one written in ``models/manifest.json`` (and in any extra report given with
``--report``). Exit code 0 when all agree within the tolerance, 1 when one does not, 2 on bad
input. Results go to ``experiments/reports/verify-shipped/`` (JSON + Markdown).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _atomic
from .artifacts import models_dir, read_manifest
from .evaluate import command_line, environment, metrics_from_proba

CHUNK = 256  # faces per predict_proba call (bounds memory for the big VGG nets)


def predict_chunked(predict_proba, faces: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(n, 5) probabilities from ``predict_proba`` applied to (n, 48, 48) faces in chunks."""
    parts = [np.asarray(predict_proba(faces[i:i + chunk]), np.float64) for i in range(0, len(faces), chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 5))


def tta_policy(report: dict) -> str:
    """The TTA policy a report was evaluated with: "none", "flip" or a registered policy name."""
    tta = report.get("tta", False)
    if tta is True:
        return "flip"
    return str(tta) if tta else "none"


def predict_with_policy(predict_fn, faces: np.ndarray, policy: str) -> np.ndarray:
    """(n, 5) probabilities averaged over the policy's views (fer_hybrid.cnn.tta.predict_tta)."""
    if policy == "none":
        return predict_chunked(predict_fn, faces)
    from .cnn.tta import predict_tta

    return np.asarray(predict_tta(predict_fn, faces, policy, CHUNK), np.float64)


def verify_model(name: str, report: dict, data, split: str = "test", root: Path | None = None) -> dict:
    """Re-evaluate one shipped model; returns a row with recorded vs re-evaluated accuracy."""
    from .predictors import load_predictor

    predictor = load_predictor(name, root)
    part = data.split(split)
    policy = tta_policy(report)
    # Keras models take the views as float pixels, as experiments/cnn_tta.py does (predict_proba rounds to uint8)
    predict_fn = getattr(predictor, "predict_pixels", predictor.predict_proba)
    proba = predict_with_policy(predict_fn, part.x, policy)
    # models that abstain (NaN rows: no landmarks) are scored like their reports: abstentions count as wrong
    metrics = metrics_from_proba(part.y, proba)
    recorded = report["metrics"][split]["accuracy"]
    return {"model": name, "report": report.get("name"), "tta": policy, "split": split, "n": int(len(part.y)),
            "recorded": float(recorded), "reevaluated": float(metrics["accuracy"]),
            "macro_f1": float(metrics["macro_f1"]), "delta": float(metrics["accuracy"] - recorded)}


def to_markdown(rows: Sequence[dict], tolerance: float) -> str:
    lines = ["# Shipped models re-evaluated", "",
             f"Each shipped model loaded through the predictor registry and re-run on FER2013-5; "
             f"pass when |re-evaluated - recorded| <= {tolerance:.3f}.", "",
             "| model | report | TTA | split | n | recorded acc | re-evaluated acc | delta | pass |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['report']} | {r['tta']} | {r['split']} | {r['n']} | {r['recorded']:.4f} | "
                     f"{r['reevaluated']:.4f} | {r['delta']:+.4f} | {'yes' if r['ok'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _targets(args, manifest: dict) -> list[tuple[str, dict]]:
    """(model name, report dict) pairs: the manifest's reports plus the extra --report ones."""
    models = manifest.get("models", {})
    names = args.models or sorted(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        raise ValueError(f"not shipped: {', '.join(unknown)}; shipped models: {', '.join(sorted(models))}")
    out = [(n, json.loads(Path(models[n]["report"]).read_text())) for n in names]
    for extra in args.report or []:
        path = Path(extra)
        report = json.loads((path / "report.json" if path.is_dir() else path).read_text())
        artifact = (report.get("artifact") or {}).get("path", "")
        owner = [n for n, e in models.items() if artifact.endswith(e["file"])]
        if not owner:
            raise ValueError(f"{extra}: its artifact {artifact!r} is not a shipped model")
        out.append((owner[0], report))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fer_hybrid.verify", description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="model names (default: every model in the manifest)")
    ap.add_argument("--report", action="append", help="also check this report (dir or report.json) of a shipped model")
    ap.add_argument("--data", help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--tolerance", type=float, default=0.005, help="allowed |accuracy difference| (0.005 = 0.5 points)")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("experiments/reports/verify-shipped"))
    args = ap.parse_args(argv)

    from .data import DataError, load_fer2013

    try:
        manifest = read_manifest(args.models_dir or models_dir())
        targets = _targets(args, manifest)
        data = load_fer2013(args.data)
    except (ValueError, OSError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = []
    for name, report in targets:
        row = verify_model(name, report, data, args.split, args.models_dir)
        row["ok"] = abs(row["delta"]) <= args.tolerance
        rows.append(row)
        print(f"{name:<12} {row['report']:<22} tta={row['tta']:<10} recorded {row['recorded']:.4f}  "
              f"re-evaluated {row['reevaluated']:.4f}  delta {row['delta']:+.4f}  {'ok' if row['ok'] else 'FAIL'}")
    result = {"rows": rows, "tolerance": args.tolerance, "command": command_line(), "environment": environment()}
    args.out.mkdir(parents=True, exist_ok=True)
    _atomic.write_text(args.out / "verify.json", json.dumps(result, indent=2) + "\n")
    _atomic.write_text(args.out / "verify.md", to_markdown(rows, args.tolerance)
                       + f"\nCommand: `{result['command']}`\n")
    print(f"wrote {args.out / 'verify.md'}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
