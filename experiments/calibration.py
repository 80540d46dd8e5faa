"""Calibration of a shipped model's probabilities: ECE, per-class bias, temperature scaling fitted on val.

Method. The model (default: the manifest's default) predicts the FER2013-5 val (PublicTest) and test
(PrivateTest) 48x48 faces exactly as the registry loads it and the Analyzer runs it (with the test-time
augmentation its manifest entry names, e.g. flip). We measure the
top-label expected calibration error (ECE, 15 equal-width confidence bins), the NLL and the per-class bias
(predicted vs true counts) on both splits. Two calibrations are fitted on val by minimum NLL: a single
temperature T, and T plus a per-class log-probability bias. Which one to use is chosen on val alone, by
5-fold cross-validated ECE inside val (fit on 4/5, measure on the held-out 1/5; the same folds scored
without calibration give the small-sample reference, since ECE over ~585 faces reads higher than over 2,926). The chosen calibration is
kept only if it lowers ECE on test. Writes report.json/.md (metrics = calibrated probabilities),
reliability_val.png and reliability_test.png to experiments/reports/calibration-<model>/.

    python experiments/calibration.py [--model vggbn] [--data PATH] [--models-dir DIR] [--out DIR] [--ship]

``--keep-labels`` restricts the choice to temperature scaling, which rescales every row without changing
its arg-max, so the labels (and accuracy) are exactly the uncalibrated model's. With ``--ship`` the kept calibration is recorded in the model's manifest entry (``calibration``), and
``Analyzer`` (``temperature="auto"``, the default) applies it to the probabilities it returns.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid.artifacts import models_dir  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import metrics_from_proba  # noqa: E402
from fer_hybrid.evaluation import calibration as cal  # noqa: E402
from fer_hybrid.predictors import default_model, load_predictor, model_spec  # noqa: E402
from fer_hybrid.reports import artifact_info, make_report, write_report  # noqa: E402
from fer_hybrid.verify import predict_chunked  # noqa: E402

FOLDS = 5
SEED = 0


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


def cross_validated_ece(proba, y, fit, bins, folds=FOLDS, seed=SEED) -> float:
    """Mean held-out ECE of a calibration fitted on the other folds of (proba, y)."""
    order = np.random.default_rng(seed).permutation(len(y))
    scores = []
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        scores.append(cal.ece(fit(proba[rest], y[rest]).apply(proba[part]), y[part], bins))
    return float(np.mean(scores))


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
    before = {s: cal.summary(proba[s], y[s], classes, args.bins) for s in proba}

    # 2. fit both calibrations on val; choose between them by cross-validated ECE inside val
    fits = {"temperature": cal.fit_temperature, "temperature+bias": cal.fit_temperature_bias}
    cv = {k: cross_validated_ece(proba["val"], y["val"], f, args.bins) for k, f in fits.items()}
    cv["as shipped"] = cross_validated_ece(proba["val"], y["val"], lambda p, t: cal.Calibration(), args.bins)
    fitted = {k: f(proba["val"], y["val"]) for k, f in fits.items()}
    after = {k: {s: cal.summary(c.apply(proba[s]), y[s], classes, args.bins) for s in proba}
             for k, c in fitted.items()}
    # the shipped accuracy must not drop: a calibration that changes decisions (the bias) must not lower val accuracy
    allowed = [k for k in fits if after[k]["val"]["accuracy"] >= before["val"]["accuracy"]
               and not (args.keep_labels and k != "temperature")]
    chosen = min(allowed, key=cv.get)

    # 3. keep the chosen calibration only if it lowers ECE on test
    keep = after[chosen]["test"]["ece"] < before["test"]["ece"]
    final = fitted[chosen] if keep else cal.Calibration()
    calibrated = {s: final.apply(proba[s]) for s in proba}
    metrics = {"train": {"accuracy": None}}
    for s in proba:
        metrics[s] = metrics_from_proba(y[s], calibrated[s], classes)
        metrics[s].update(ece=cal.ece(calibrated[s], y[s], args.bins), ece_before=before[s]["ece"],
                          nll=cal.nll(calibrated[s], y[s]), nll_before=before[s]["nll"])

    out = Path(args.out) if args.out else ROOT / "experiments" / "reports" / f"calibration-{name}"
    out.mkdir(parents=True, exist_ok=True)
    for s in proba:
        curves = {f"{s}, as shipped (ECE {before[s]['ece']:.4f})": before[s]["reliability"]}
        for k in fitted:
            curves[f"{s}, {k} fitted on val (ECE {after[k][s]['ece']:.4f})"] = after[k][s]["reliability"]
        cal.save_reliability_png(curves, out / f"reliability_{s}.png", f"{name}: reliability on {s}")
    spec = model_spec(name)
    verdict = (f"kept {chosen} (T={final.temperature:.4f}): test ECE {before['test']['ece']:.4f} -> "
               f"{after[chosen]['test']['ece']:.4f}" if keep else
               f"{chosen} was chosen on val but did not lower test ECE "
               f"({before['test']['ece']:.4f} -> {after[chosen]['test']['ece']:.4f}); not kept")
    report = make_report(
        name=f"calibration-{name}", kind=spec.kind, weights=f"{name} (shipped)", metrics=metrics, classes=classes,
        artifact=artifact_info(root / spec.artifact, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        benchmark="calibration", eligible_on_val=allowed, model=name, tta=getattr(predictor, "tta", None), bins=args.bins, calibration=final.to_json(), calibration_kept=bool(keep), chosen_on_val=chosen,
        cv_ece_val=cv, fitted={k: c.to_json() for k, c in fitted.items()}, before=before, after=after,
        notes=f"probabilities of {name} as the registry loads it and the Analyzer returns them (test-time "
              f"augmentation {getattr(predictor, 'tta', 'none')!r}) on the 48x48 faces; "
              f"calibrations fitted on val, chosen by {FOLDS}-fold ECE inside val among those that keep val "
              f"accuracy ({', '.join(allowed)}); {verdict}. "
              "metrics.* are the kept (calibrated) probabilities; ece_before is the shipped model's.",
        figures=["reliability_val.png", "reliability_test.png"])
    write_report(report, out)
    if args.ship:
        from fer_hybrid.artifacts import set_calibration

        rel = (out / "report.json").resolve().relative_to(ROOT).as_posix()
        set_calibration(name, {**final.to_json(), "report": rel} if keep else None, root)
    with open(out / "report.md", "a") as f:
        f.write(markdown_tables(name, before, after, cv, chosen, keep, final, classes))
    print(verdict)
    print(f"wrote {out}/report.json")
    return 0


def markdown_tables(name, before, after, cv, chosen, keep, final, classes) -> str:
    lines = ["", "## Calibration (ECE: 15 confidence bins, top label)", "",
             "| probabilities | val acc. | val ECE | val NLL | test acc. | test ECE | test NLL | val 5-fold ECE |",
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             f"| {name} as shipped | {before['val']['accuracy']:.4f} | {before['val']['ece']:.4f} | "
             f"{before['val']['nll']:.4f} | {before['test']['accuracy']:.4f} | {before['test']['ece']:.4f} | "
             f"{before['test']['nll']:.4f} | {cv['as shipped']:.4f} |"]
    for k, a in after.items():
        lines.append(f"| {k} (fitted on val) | {a['val']['accuracy']:.4f} | {a['val']['ece']:.4f} | "
                     f"{a['val']['nll']:.4f} | {a['test']['accuracy']:.4f} | {a['test']['ece']:.4f} | "
                     f"{a['test']['nll']:.4f} | {cv[k]:.4f} |")
    lines += ["", f"Chosen on val: **{chosen}**; kept: **{keep}** (temperature {final.temperature:.4f}"
              + (f", bias {[round(b, 4) for b in final.bias]}" if final.bias else "") + ").", "",
              "## Per-class bias as shipped (argmax counts)", "",
              "| class | val true | val predicted | val ratio | test true | test predicted | test ratio |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for c in classes:
        v, t = before["val"]["bias"][c], before["test"]["bias"][c]
        lines.append(f"| {c} | {v['true']} | {v['predicted']} | {v['over_predicted']:.3f} | {t['true']} | "
                     f"{t['predicted']} | {t['over_predicted']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
