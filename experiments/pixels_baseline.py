"""Floor model: HOG + 12x12 pixels -> logistic regression on FER2013-5 (proves the pipeline end to end).

    python experiments/pixels_baseline.py [--data PATH]

Method: features from the 48x48 face (HOG 8x8 cells, 9 bins, plus a 12x12 thumbnail); the inverse
regularisation C is chosen on val (PublicTest) from a small grid; the chosen model is refit on train
and reported once on test (PrivateTest).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "reports" / "pixels-hog-logreg"))
    p.add_argument("--grid", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    args = p.parse_args(argv)

    from fer_hybrid.classical import ClassicalPredictor, hog_logreg
    from fer_hybrid.data import DataError, load_fer2013
    from fer_hybrid.reports import report_predictor

    # 1. Data: the five study emotions.
    try:
        data = load_fer2013(args.data)
    except (FileNotFoundError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 2. Choose C on val.
    scores = {}
    for C in args.grid:
        t0 = time.perf_counter()
        model = hog_logreg(C).fit(data.train.x, data.train.y)
        scores[C] = float((model.predict(data.val.x) == data.val.y).mean())
        print(f"C={C:g}: val accuracy {scores[C]:.4f} ({time.perf_counter() - t0:.1f} s)")
    best_c = max(scores, key=scores.get)

    # 3. Refit with the chosen C, time it, report on all splits.
    t0 = time.perf_counter()
    model = hog_logreg(best_c).fit(data.train.x, data.train.y)
    fit_seconds = time.perf_counter() - t0
    predictor = ClassicalPredictor(model, "pixels-hog-logreg")
    path, report = report_predictor(predictor, data, args.out, kind="baseline", weights=None, params=int(
        model[-1].coef_.size + model[-1].intercept_.size), artifact=None, seconds_per_epoch=None,
        fit_seconds=fit_seconds, val_grid={str(k): v for k, v in scores.items()}, chosen_C=best_c,
        backbone="HOG + 12x12 pixels -> logistic regression",
        notes="classical floor model; C chosen on val; not shipped")
    print(f"test accuracy {report['metrics']['test']['accuracy']:.4f} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
