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
PNG curves to experiments/reports/inframe-<model>/, with every face's answer per condition in predictions.npz
(for paired comparisons of two models: experiments/inframe_paired.py).

    python experiments/inframe.py --model vggbn [--variants margin:0.1,margin:0.25,box,level,eyes] [--n 500]
        [--splits val,test] [--conditions default,rot+20,...] [--temperature T] [--out DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_hybrid import Analyzer  # noqa: E402
from fer_hybrid.artifacts import models_dir  # noqa: E402
from fer_hybrid.data import load_fer2013  # noqa: E402
from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation import inframe_report as R  # noqa: E402
from fer_hybrid.predictors import default_model, model_spec  # noqa: E402
from fer_hybrid.reports import artifact_info  # noqa: E402
from fer_hybrid.verify import predict_chunked  # noqa: E402


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="registered model (default: the manifest's default)")
    ap.add_argument("--variants", default=None,
                    help=f"comma-separated crop variants: {F.VARIANT_HELP} (default {F.CROP_VARIANTS}; 'own' for "
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
    load_start = loadavg()
    root = Path(args.models_dir) if args.models_dir else models_dir()
    name = args.model or default_model(root)
    analyzer = Analyzer(name, models_dir=root, upsample=args.upsample)  # photo mode detection
    predictor = analyzer.predictor
    specs = F.variant_specs(predictor, args.variants)
    variants = {s: F.variant_predictor(predictor, s, args.temperature) for s in specs}
    conditions = F.select_conditions(args.conditions.split(",") if args.conditions else None)
    splits = args.splits.split(",")
    data = load_fer2013(args.data)

    # 1. per split: the seeded faces, the model on their direct 48x48 crops, the detector on the upscaled originals
    # 2. every condition: detect (cached), then classify the matched face with every variant
    rows, default, seconds, per_face, truth = {}, {}, {v: 0.0 for v in variants}, {}, {}
    for split in splits:
        s = data.split(split)
        idx = F.subset(len(s), args.n, args.seed, split)
        x, y = s.x[idx], s.y[idx]
        pred = {}
        r, d, sec = F.run_split(x, y, idx, split, conditions, args.seed, variants,
                                predict_chunked(predictor.predict_proba, x), F.detected_on_originals(x),
                                analyzer.detect, F.detector_key(analyzer), args.cache, progress=True,
                                log=lambda line: print(line, flush=True), predictions=pred)
        rows.update(r)
        per_face.update({(v, split): p for v, p in pred.items()})
        truth[split] = (y, idx)
        default.update({(v, split): (y, p) for v, p in d.items()})
        seconds = {v: seconds[v] + sec[v] for v in variants}

    # 3. choose the variant on val (mean accuracy counting misses as errors over all conditions)
    chosen, select, score = F.choose_variant(rows, list(variants), conditions, splits)

    # 4. the report: metrics = the chosen variant at the default condition, misses as errors (ABSTAIN)
    metrics = R.default_metrics({s: default[(chosen, s)] for s in splits if (chosen, s) in default}, rows, chosen,
                                splits, data.classes)
    out = Path(args.out) if args.out else R.report_folder(ROOT / "experiments" / "reports", name)
    out.mkdir(parents=True, exist_ok=True)
    figures = R.save_curves(rows, variants, conditions, splits, chosen, out, name)
    spec = model_spec(name)
    artifact = root / spec.artifact if spec else None
    report = R.build_report(
        name=name, rows=rows, metrics=metrics, seconds=seconds, specs=specs, chosen=chosen, select=select,
        score=score, conditions=conditions, n=args.n, seed=args.seed, temperature=args.temperature, data=data,
        artifact=artifact_info(artifact, ROOT) if artifact and artifact.is_file() else None,
        kind=spec.kind if spec else "cnn", figures=figures, loadavg_start=load_start, loadavg_end=loadavg())
    R.save_predictions(out, per_face, truth, conditions)  # per face, for paired comparisons (inframe_paired.py)
    R.write_inframe_report(report, rows, list(variants), conditions, splits, out)
    print(f"chosen on {select}: {chosen} ({score[chosen]:.4f}); wrote {out}/report.json")
    return 0


if __name__ == "__main__":
    t0 = time.time()
    code = main()
    print(f"{time.time() - t0:.0f} s")
    sys.exit(code)
