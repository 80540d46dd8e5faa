"""Calibration of a shipped model's probabilities: ECE, per-class bias, temperature scaling fitted on val.

    python experiments/calibration.py [--model vggbn] [--data PATH] [--models-dir DIR] [--out DIR] [--ship]

Method (library: fer_hybrid.evaluation.calibration).
1. Probabilities. The model (default: the manifest's default) predicts the FER2013-5 val (PublicTest) and
   test (PrivateTest) 48x48 faces exactly as the registry loads it and the Analyzer runs it (with the
   test-time augmentation its manifest entry names, e.g. flip).
2. Measures and fits. Top-label expected calibration error (ECE, 15 equal-width confidence bins), NLL and
   per-class bias (predicted vs true counts) on both splits. Two calibrations are fitted on val by minimum
   NLL: a single temperature T, and T plus a per-class log-probability bias.
3. Choice, on val alone: among the calibrations that do not lower val accuracy, the lowest 5-fold
   cross-validated ECE inside val (fit on 4/5, measure on the held-out 1/5; the same folds scored without
   calibration give the small-sample reference, since ECE over ~585 faces reads higher than over 2,926).
   ``--keep-labels`` restricts the choice to temperature scaling, which rescales every row without changing
   its arg-max, so the labels (and accuracy) are exactly the uncalibrated model's.
4. Keep. The chosen calibration is kept only if it lowers the cross-validated ECE inside val below that of
   the probabilities as shipped; test ECE is reported, never used to decide.
5. Report. report.json/.md (metrics = calibrated probabilities), reliability_val.png and reliability_test.png
   in experiments/reports/calibration-<model>/ (``--out``: another folder). With ``--ship`` the kept
   calibration is recorded in the model's manifest entry (``calibration``), and ``Analyzer``
   (``temperature="auto"``, the default) applies it to the probabilities it returns.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid.artifacts import models_dir  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluation import calibration as cal  # noqa: E402
from fer_hybrid.predictors import default_model, load_predictor, model_spec  # noqa: E402
from fer_hybrid.reports import artifact_info, make_report, repo_path, write_report  # noqa: E402
from fer_hybrid.verify import predict_chunked  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="registered model name (default: the manifest's default)")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH)")
    ap.add_argument("--models-dir", default=None, help="models folder (default: the packaged models)")
    ap.add_argument("--bins", type=int, default=cal.N_BINS, help="confidence bins for ECE")
    ap.add_argument("--out", default=None, help="report folder (default experiments/reports/calibration-<model>)")
    ap.add_argument("--keep-labels", action="store_true",
                    help="only calibrations that never change a label are eligible (temperature): the Analyzer's "
                         "labels then stay exactly those whose accuracy the registry records")
    ap.add_argument("--ship", action="store_true",
                    help="record the kept calibration in the model's manifest entry (the Analyzer applies it); "
                         "a calibration that was not kept removes any recorded one")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    root = Path(args.models_dir) if args.models_dir else models_dir()
    name = args.model or default_model(root)
    predictor = load_predictor(name, root)
    data = load_fer2013(args.data)
    classes = tuple(data.classes)

    # 1. the model's probabilities on val and test, as the Analyzer returns them
    proba = {s: predict_chunked(predictor.predict_proba, data.split(s).x) for s in ("val", "test")}
    y = {s: data.split(s).y for s in ("val", "test")}

    # 2. measure them; fit both calibrations on val and measure them on both splits
    c = cal.compare_calibrations(proba, y, classes, args.bins)

    # 3. choose on val (cross-validated ECE) among the calibrations that keep val accuracy (or the labels)
    allowed = cal.eligible(c, args.keep_labels)
    chosen = cal.choose_on_val(c, allowed)

    # 4. keep the chosen calibration only if it lowers the cross-validated ECE inside val (test only reported)
    keep, final = cal.kept_calibration(c, chosen)
    metrics = cal.calibrated_metrics(proba, y, final, c.before, classes, args.bins)

    # 5. report (and with --ship, the manifest entry)
    out = Path(args.out) if args.out else ROOT / "experiments" / "reports" / f"calibration-{name}"
    out.mkdir(parents=True, exist_ok=True)
    cal.save_reliability_pngs(c, out, name)
    spec = model_spec(name)
    verdict = cal.verdict(c, chosen, keep, final)
    report = make_report(
        name=f"calibration-{name}", kind=spec.kind, weights=f"{name} (shipped)", metrics=metrics, classes=classes,
        artifact=artifact_info(root / spec.artifact, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        benchmark="calibration", eligible_on_val=allowed, model=name, tta=getattr(predictor, "tta", None),
        bins=args.bins, calibration=final.to_json(), calibration_kept=keep, chosen_on_val=chosen,
        cv_ece_val=c.cv, fitted={k: f.to_json() for k, f in c.fitted.items()}, before=c.before, after=c.after,
        notes=cal.report_notes(name, getattr(predictor, "tta", "none"), allowed, verdict),
        figures=["reliability_val.png", "reliability_test.png"])
    write_report(report, out)
    if args.ship:
        from fer_hybrid.artifacts import set_calibration

        rel = repo_path(out / "report.json", ROOT)
        set_calibration(name, {**final.to_json(), "report": rel} if keep else None, root)
    with open(out / "report.md", "a") as f:
        f.write(cal.markdown_tables(name, c, chosen, keep, final, classes))
    print(verdict)
    print(f"wrote {out}/report.json")
    return 0

if __name__ == "__main__":
    sys.exit(main())
