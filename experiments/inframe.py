"""FER2013 "in the frame": a model through the full Analyzer path (detection included) on synthetic frames.

Method. From the FER2013-5 val (PublicTest) and test (PrivateTest) splits we draw a seeded subset of ``--n``
faces each. Every face is rendered (fer_hybrid.evaluation.inframe) into a 480x400 gray frame under each
condition: the default (the face drawn at 192 px near the centre), scale 0.5-2, in-plane rotation 0, ±10, ±20,
±30 degrees, a face 15 % past the frame edge, gamma 0.5/2, blur, noise and JPEG quality 30/10; the border is
the face's reflection, blurred. Each frame goes through the Analyzer's photo detection (dlib HOG at full
resolution, Analyzer.detect); the detection overlapping the face's expected box (IoU >= 0.3) is the face, and
the Analyzer's FacePredictor classifies it with each crop variant (margin M = the original box + margin crop;
box / level / eyes = the calibrated framing of fer_hybrid.inference.align). Misses count as errors in
``accuracy_all``; ``accuracy_found`` is over found faces and is compared with the same model on the same
faces' direct 48x48 crops. The variant is chosen on val alone (highest mean accuracy_all over all conditions)
and reported on test. Detections are cached by content in experiments/checkpoints/inframe/, so a re-run for
another model only classifies. Writes report.json/.md (metrics = default condition, misses as errors) and
PNG curves to experiments/reports/inframe-<model>/.

    python experiments/inframe.py --model vggbn [--variants margin:0.1,margin:0.25,box,level,eyes] [--n 500]
        [--splits val,test] [--conditions default,rot+20,...] [--temperature T] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid.artifacts import models_dir  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluate import classification_metrics  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation.inframe_report import markdown_tables, save_curves  # noqa: E402
from fer_hybrid.predictors import default_model, model_spec  # noqa: E402
from fer_hybrid.reports import artifact_info, make_report, write_report  # noqa: E402
from fer_hybrid.verify import predict_chunked  # noqa: E402

CROP_VARIANTS = "margin:0.1,margin:0.25,box,level,eyes"


def detector_key(analyzer) -> str:
    """What the cached detections depend on: the Analyzer's photo upsampling and rescue threshold."""
    key = "analyzer-photo" if analyzer.upsample is None else f"analyzer-photo-up{analyzer.upsample}"
    return key if analyzer.rescue_threshold is None else f"{key}-rescue{analyzer.rescue_threshold:g}"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="registered model (default: the manifest's default)")
    ap.add_argument("--variants", default=None,
                    help=f"comma-separated crop variants: {F.VARIANT_HELP} (default {CROP_VARIANTS}; 'own' for "
                         "models that crop themselves)")
    ap.add_argument("--n", type=int, default=500, help="faces per split (seeded subset; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splits", default="val,test")
    ap.add_argument("--conditions", default=None, help="comma-separated condition names (default: all)")
    ap.add_argument("--temperature", type=float, default=None, help="temperature scaling of the probabilities")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH)")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--cache", default=str(ROOT / "experiments" / "checkpoints" / "inframe"))
    ap.add_argument("--out", default=None, help="report folder (default experiments/reports/inframe-<model>)")
    ap.add_argument("--upsample", type=int, default=None, choices=[0, 1, 2],
                    help="dlib HOG upsampling of the photo detection (default: the Analyzer's photo rule)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    root = Path(args.models_dir) if args.models_dir else models_dir()
    name = args.model or default_model(root)
    analyzer = Analyzer(name, models_dir=root, upsample=args.upsample)  # photo mode detection
    predictor = analyzer.predictor
    own = getattr(predictor, "input_kind", "crops") == "frame"
    specs = (args.variants or ("own" if own else CROP_VARIANTS)).split(",")
    variants = {s: F.variant_predictor(predictor, s, args.temperature) for s in specs}
    conditions = F.select_conditions(args.conditions.split(",") if args.conditions else None)
    splits = args.splits.split(",")
    data = load_fer2013(args.data)

    # 1. per split: the seeded faces, the model on their direct 48x48 crops, the detector on the upscaled originals
    rows, preds, seconds = {}, {}, {v: 0.0 for v in variants}
    for split in splits:
        s = data.split(split)
        idx = F.subset(len(s), args.n, args.seed, split)
        x, y = s.x[idx], s.y[idx]
        direct = predict_chunked(predictor.predict_proba, x)
        found_original = F.detected_on_originals(x)
        # 2. every condition: detect (cached), then classify the matched face with every variant
        for c in conditions:
            boxes = F.detect_frames(x, idx, c, args.seed, split, analyzer.detect, cache_dir=args.cache, progress=True,
                                    detector=detector_key(analyzer))
            r = F.classify_frames(x, idx, c, args.seed, split, boxes, variants, progress=True)
            found = r["matched"] >= 0
            for v in variants:
                rows[(v, c.name, split)] = F.condition_metrics(y, r["proba"][v], direct, found, found_original,
                                                               r["false_positives"])
                seconds[v] += r["seconds"][v]
                if c.name == "default":
                    preds[(v, split)] = (y, r["proba"][v])
            print(f"{split:4s} {c.name:9s} found {found.mean():.3f} " + " ".join(
                f"{v}={rows[(v, c.name, split)]['accuracy_found']:.3f}" for v in variants), flush=True)

    # 3. choose the variant on val (mean accuracy counting misses as errors over all conditions)
    select = "val" if "val" in splits else splits[0]
    score = {v: float(np.mean([rows[(v, c.name, select)]["accuracy_all"] for c in conditions])) for v in variants}
    chosen = max(score, key=score.get)

    # 4. the report: metrics = the chosen variant at the default condition, misses as errors (ABSTAIN)
    metrics = {"train": {"accuracy": None}}
    for split in splits:
        if (chosen, split) in preds:
            y, p = preds[(chosen, split)]
            pred = np.where(np.isfinite(p).all(axis=1), np.nan_to_num(p).argmax(axis=1), -1)
            metrics[split] = classification_metrics(y, pred, data.classes)
            metrics[split].update(rows[(chosen, "default", split)])
    for split in ("val", "test"):
        metrics.setdefault(split, {"accuracy": None, "macro_f1": None, "n": None})
    n_found = sum(r["found"] for (v, _, _), r in rows.items() if v == chosen)
    out = Path(args.out) if args.out else ROOT / "experiments" / "reports" / f"inframe-{name}"
    out.mkdir(parents=True, exist_ok=True)
    figures = save_curves(rows, variants, conditions, splits, chosen, out, name)
    spec = model_spec(name) if isinstance(name, str) else None
    table = [{"variant": v, "condition": c, "split": s, **m} for (v, c, s), m in rows.items()]
    report = make_report(
        name=f"inframe-{name}", kind=spec.kind if spec else "cnn", weights=f"{name} (shipped)", metrics=metrics,
        classes=data.classes, ms_per_face=1e3 * seconds[chosen] / max(n_found, 1),
        artifact=artifact_info(root / spec.artifact, ROOT) if spec and (root / spec.artifact).is_file() else None,
        data={"source": Path(data.source).name, "sha256": data.sha256},
        benchmark="inframe", ms_per_face_by_variant={v: 1e3 * seconds[v] / max(n_found, 1) for v in variants},
        model=name, variants=specs, chosen_variant=chosen, selected_on=select, selection_score=score,
        n_per_split=args.n, seed=args.seed, temperature=args.temperature,
        conditions=[c.to_json() for c in conditions], rows=table,
        loadavg_start=load_start, loadavg_end=" ".join(Path("/proc/loadavg").read_text().split()[:3]),
        notes=(f"FER2013 faces in synthetic 480x400 frames through the Analyzer (photo detection, then the crop "
               f"variant); {args.n or 'all'} seeded faces per split per condition; metrics = variant {chosen!r} "
               "(chosen on val) at the default condition, a missed face counted as an error (n_abstained = misses); "
               "ms per face = crop + model (+ landmarks) per found face, under load, excluding detection"),
        figures=figures)
    write_report(report, out)
    with open(out / "report.md", "a") as f:
        f.write(markdown_tables(rows, variants, conditions, splits, chosen, score, select))
    print(f"chosen on {select}: {chosen} ({score[chosen]:.4f}); wrote {out}/report.json")
    return 0


if __name__ == "__main__":
    t0 = time.time()
    code = main()
    print(f"{time.time() - t0:.0f} s")
    sys.exit(code)
