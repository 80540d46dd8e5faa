"""FER+ cross-check: every report's model scored on the test split against the FER+ majority label.

    python experiments/ferplus_crosscheck.py [--reports experiments/reports] [--data PATH] [--only NAME ...]

Method (library: fer_hybrid.evaluation.ferplus_check, fer_hybrid.ferplus)
1. Labels. The FER+ crowd majority of every FER2013 JPEG (single votes dropped, > 50 % of the rest); images
   whose majority is neutral/disgust/contempt/unknown/not-a-face, without a majority, or without a FER+ row
   are excluded and counted.
2. Data. The FER2013-5 test split (PrivateTest, images whose FER2013 label is one of the 5 study classes),
   with the cached landmark extraction for the landmark models and hybrids.
3. Models. For each ``report.json`` under the reports folder, the model it describes: the peer file, the
   ``.keras`` network (with the TTA policy the report records), ``.onnx``, a landmark/hybrid/CNN-ensemble
   descriptor, or the registered model of the same name; its recorded sha256 must match, else the report is
   skipped as "changed". Reports measured on other data are skipped.
4. Score. The model predicts the test split and is scored against the FER+ label; the result goes INTO that
   report as ``metrics.test_ferplus`` = {accuracy, macro_f1, n, excluded, ...}; every other key is kept and
   the Markdown twin is rewritten. Reports without a loadable model keep any ``test_ferplus`` they have.
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
DEFAULT_PEERS = ROOT.parent / "shared" / "models" / "peers"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", default=str(REPORTS), help="folder searched for report.json files")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--models", default=None, help="models folder (default fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--peers", default=str(DEFAULT_PEERS), help="folder holding the peer .hdf5 files")
    ap.add_argument("--ferplus-dir", default=None, help="folder with fer2013new.csv + map (default $FERPLUS_DIR "
                                                        "or ../shared/data/ferplus)")
    ap.add_argument("--only", nargs="*", default=None, help="report names to process (default: all)")
    return ap.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    from fer_hybrid import artifacts, ferplus
    from fer_hybrid.data import load_fer2013, resolve_source
    from fer_hybrid.evaluation.ferplus_check import CrosscheckInputs, crosscheck_report, report_model
    from fer_hybrid.reports import find_reports

    # 1. FER+ majority labels (nothing to do without the FER+ files).
    if args.ferplus_dir:
        os.environ["FERPLUS_DIR"] = args.ferplus_dir
    if not ferplus.available():
        print(f"FER+ files not found in {ferplus.ferplus_dir()}; nothing to cross-check (no report changed)")
        return 0
    labels = ferplus.ferplus_majority_labels()
    # 2. The test split (landmarks extracted on demand, once per method).
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    inputs = CrosscheckInputs(source, load_fer2013(source))
    # 3-4. Every report's model, scored against FER+ and written into its report.
    load = functools.partial(report_model, models_root=Path(args.models) if args.models else artifacts.models_dir(),
                             peers=Path(args.peers), repo_root=ROOT)
    counts = collections.Counter()
    for path in find_reports(args.reports):
        outcome = crosscheck_report(path, inputs, labels, load, only=args.only)
        counts[outcome.status] += 1
        if outcome.line:
            print(outcome.line)
    print(f"{counts['updated']} report(s) updated, {counts['kept']} kept their earlier FER+ numbers, "
          f"{counts['skipped']} skipped")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
