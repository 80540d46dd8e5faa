"""Ship a trained, reported checkpoint under a registry name (e.g. a distilled VGGFace as ``vggface``).

    python experiments/ship_checkpoint.py --report vggface-kd --as vggface

Method.
1. The report (experiments/reports/REPORT/report.json) names the checkpoint it evaluated and its sha256; the
   checkpoint must be that exact file (else exit 2: the report would not describe what ships).
2. Choice on val: it replaces the model registered as ``--as`` only if its val accuracy as run is higher than
   the registered model's (else exit 1, nothing changes). Test is reported, never compared.
3. The file goes to models/AS.keras (atomic copy) and the manifest entry AS is rewritten from the report
   (metrics, command, TTA as run, ms/face), keeping the entry's description unless ``--description`` is given;
   its ``weights`` say which file it was trained from (or averaged with) when that is the file it replaces.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid import _atomic, artifacts, reports  # noqa: E402
from fer_hybrid.artifacts import manifest_metrics  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", required=True, help="report name under experiments/reports/")
    ap.add_argument("--as", dest="name", required=True, help="registry name to ship under")
    ap.add_argument("--description", default=None)
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    args = ap.parse_args(argv)

    # 1. The report and the exact file it evaluated.
    report_path = Path(args.reports) / args.report / "report.json"
    if not report_path.exists():
        print(f"error: no report {report_path}", file=sys.stderr)
        return 2
    report = json.loads(report_path.read_text())
    try:
        checkpoint = reports.reported_artifact(report, ROOT)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 2. Choice on val against what is registered under that name.
    manifest = artifacts.read_manifest()
    old = manifest["models"].get(args.name, {})
    new_val = report["metrics"]["val"]["accuracy"]
    better, old_val = artifacts.beats_on_val(manifest, args.name, new_val)
    if not better:
        print(f"not shipped: val {new_val:.4f} does not beat the registered {args.name} ({old_val:.4f})")
        return 1

    # 3. Ship: the file and the manifest entry, from the report.
    target = artifacts.models_dir() / f"{args.name}.keras"
    with _atomic.atomic_path(target, suffix=".keras") as tmp:
        shutil.copyfile(checkpoint, tmp)
    metrics = manifest_metrics(report["metrics"], evaluated_only=True)
    weights = report.get("weights")
    replaced = f"models/{args.name}.keras as made by `{old.get('command')}` ({old.get('report')})"
    if weights == f"models/{args.name}.keras" and old:   # warm-started from the file it replaces: say which one
        weights = replaced
    elif old and args.name in (report.get("soup") or {}).get("chosen", []):   # a soup with the file it replaces
        weights = f"{weights}; its ingredient {args.name} is the file it replaces, {replaced}"
    artifacts.update_manifest(args.name, target, command=report["command"], data=report["data"],
                              weights=weights, metrics=metrics,
                              report=reports.repo_path(report_path, ROOT), description=args.description)
    print(json.dumps({"shipped": args.name, "file": str(target), "val": new_val, "was": old_val,
                      "test": report["metrics"]["test"]["accuracy"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
