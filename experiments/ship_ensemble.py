"""Ship the CNN ensemble chosen on val under its honest name, ``ensemble``.

    python experiments/ship_ensemble.py [--report experiments/reports/cnn-ensemble-.../report.json]

Method: the ensemble report written by ``experiments/hybrid.py --cnn-ensemble ...`` (members and weights by
greedy selection on val, TTA policy chosen on val) carries its descriptor (``ensemble.json`` beside the
report). This script copies that descriptor to ``models/ensemble/ensemble.json`` with the CNN files relative
to the models folder (:func:`fer_hybrid.hybrid.ship_cnn_ensemble`, which checks every member against the
sha256 it was evaluated with: exit 1 naming a changed or missing file), and records the model in the manifest
with the report's metrics (the accuracy of exactly this descriptor, as the registry runs it).
Nothing is re-fitted; ``python -m fer_hybrid.verify --models ensemble`` re-evaluates it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "experiments" / "reports" / ("cnn-ensemble-vggbn-s7+vggbn-s7-fp+vggbn-long+vggbn-s7-long+"
                                             "vggbn-long-ft+mobilenetv2+baseline") / "report.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, default=REPORT)
    args = ap.parse_args(argv)
    from fer_hybrid import artifacts, reports
    from fer_hybrid.errors import ArtifactError
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.hybrid import ship_cnn_ensemble
    from fer_hybrid.artifacts import manifest_metrics

    # 1. The chosen ensemble: its report (the descriptor it evaluated sits beside it).
    report = json.loads(args.report.read_text())
    # 2. The shipped descriptor, its members checked to be the files it was evaluated with.
    try:
        path = ship_cnn_ensemble(args.report.parent / "ensemble.json", artifacts.models_dir())
    except ArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    desc = json.loads(path.read_text())
    # 3. The manifest entry: what the registry loads, with the report's accuracy of exactly that.
    rel = reports.repo_path(args.report, ROOT)
    artifacts.update_manifest(
        "ensemble", path, command=command_line(), data=report["data"], weights=None,
        metrics=manifest_metrics(report["metrics"], ("train", "val", "test")),
        report=rel, kind="cnn", loader="cnn_ensemble", tta=desc["cnn"]["tta"],
        description=f"weighted average of {len(desc['members'])} of our CNNs ({', '.join(desc['members'])}) "
                    f"under the {desc['cnn']['tta']} TTA policy, chosen on val: the most accurate model, not a live one",
        train_command=report["command"])
    test = report["metrics"]["test"]["accuracy"]
    print(f"ensemble -> {reports.repo_path(path, ROOT)} (test {test:.4f}, report {rel})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
