"""In the frame, face by face: how far each candidate is from a base model, with its sampling error.

Method. Two in-frame runs (experiments/inframe.py) of the same seeded faces under the same conditions and
cached detections answer for the same frames, so their answers are paired. For each candidate against the base
(default: the manifest's default) on one split and crop variant, the difference in mean accuracy over the
conditions (a missed face counted as an error: the score the in-frame gate reads) is given with a 95 %
bootstrap interval over faces (each face keeps its conditions together; 10,000 resamples, seeded), the share
of resamples with the candidate ahead, and the conditions where it is lower / higher. What it shows: whether a
difference the gate sees is larger than the noise of 500 faces. It does not change any gate after the fact.
Writes benchmark.json/.md and differences.png to experiments/reports/inframe-paired/ (or --out).

    python experiments/inframe_paired.py --candidates vggbn-kdf-soup,vggbn-kdf [--base vggbn-kdv-soup-onnx]
        [--split val] [--variant level] [--n-boot 10000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", required=True, help="comma-separated models with in-frame reports")
    ap.add_argument("--base", default=None, help="the model to compare against (default: the manifest's default)")
    ap.add_argument("--split", default="val")
    ap.add_argument("--variant", default="level")
    ap.add_argument("--n-boot", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    ap.add_argument("--out", default=None, help="default: <reports>/inframe-paired")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from fer_hybrid.artifacts import read_manifest
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation import inframe_report as R
    from fer_hybrid.evaluation import paired as P
    from fer_hybrid.evaluation.throughput import save_report
    from fer_hybrid.reports import environment

    base = args.base or read_manifest().get("default")
    candidates = [c for c in args.candidates.split(",") if c]
    if not candidates or args.n_boot < 1:
        print("error: need at least one candidate and --n-boot >= 1", file=sys.stderr)
        return 2
    try:
        runs = {m: R.load_predictions(R.report_folder(args.reports, m), args.variant, args.split)
                for m in [base, *candidates]}
    except (FileNotFoundError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    ref = runs[base]
    rows = []
    for c in candidates:
        run = runs[c]
        if not P.same_faces(run, ref):
            print(f"error: {c} and {base} were not run on the same faces and conditions", file=sys.stderr)
            return 2
        r = P.paired_difference(P.correct_answers(run["pred"], run["y"]), P.correct_answers(ref["pred"], ref["y"]),
                                n_boot=args.n_boot, seed=args.seed)
        rows.append({"candidate": c, **r})
    rep = {"kind": "benchmark", "name": "inframe-paired", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "purpose": "Paired in-frame differences of candidates against a base model on the same faces, with "
                      "bootstrap intervals over faces (the noise of the in-frame gate).",
           "base": base, "split": args.split, "variant": args.variant, "conditions": ref["conditions"],
           "seed": args.seed, "rows": rows, "command": command_line(None if argv is None else [__file__, *argv]),
           "env": environment()}
    out = Path(args.out) if args.out else Path(args.reports) / "inframe-paired"
    out.mkdir(parents=True, exist_ok=True)
    markdown = P.paired_markdown(rep)
    P.save_differences_png(rep, out / "differences.png")
    save_report(out, "benchmark", rep, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
