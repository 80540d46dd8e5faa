"""Time to the first label for one photo, whole process, side by side with the `fer` package.

    python experiments/bench_startup.py                      # default model, 7 runs each, shared photo
    python experiments/bench_startup.py --models vggbn vggbn-kd --runs 5 --fer-python none

Method: each run is a fresh process started from this script, timed from spawn to exit (wall clock), with
its peak RSS from ``os.wait4`` (:func:`fer_hybrid.evaluation.throughput.run_process`). Ours is the
documented command ``python -m fer_hybrid.realtime --model NAME --source PHOTO --no-display --jsonl OUT``;
fer's is the smallest script that gives a label: ``from fer import FER; FER().detect_emotions(cv2.imread(PHOTO))``,
run with the python of a venv where `fer` is installed (default /work/venv-fer; skipped when absent). Runs
alternate between the tools so that drift in machine load hits both. Reports median and min seconds and
median peak RSS, plus the load average before and after. Writes ``benchmark.json`` + ``benchmark.md`` to
``--out`` (default experiments/reports/bench-startup/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid.evaluation import throughput as tp  # noqa: E402

PHOTO = ROOT.parent / "shared" / "video" / "single_face.jpg"
FER_PYTHON = Path("/work/venv-fer/bin/python")
FER_TOOL = "fer (FER().detect_emotions)"
OUT = ROOT / "experiments" / "reports" / "bench-startup"
FER_SCRIPT = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import cv2\n"
              "try:\n    from fer import FER\nexcept ImportError:\n    from fer.fer import FER\n"
              "faces = FER().detect_emotions(cv2.imread(sys.argv[1]))\n"
              "print(max(faces[0]['emotions'], key=faces[0]['emotions'].get) if faces else 'no face')\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--models", nargs="*", default=[None], help="model names (default: the shipped default)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fer-python", default=str(FER_PYTHON), help="python of a venv with `fer` ('none' = skip)")
    ap.add_argument("--out", "--reports", type=Path, default=OUT, help=f"report folder (default {OUT})")
    args = ap.parse_args(argv)
    if not args.photo.is_file():
        print(f"error: photo not found: {args.photo}", file=sys.stderr)
        return 2
    from fer_hybrid.evaluate import command_line, environment

    tools = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.models:
            tools[f"fer_hybrid ({m or 'default'})"] = [
                sys.executable, "-m", "fer_hybrid.realtime", "--source", str(args.photo), "--no-display",
                "--jsonl", str(Path(tmp) / "out.jsonl")] + (["--model", m] if m else [])
        if args.fer_python != "none" and Path(args.fer_python).exists():
            script = Path(tmp) / "fer_one_photo.py"
            script.write_text(FER_SCRIPT)
            tools[FER_TOOL] = [args.fer_python, str(script), str(args.photo)]
        load0, runs = tp.loadavg(), {k: [] for k in tools}
        for _ in range(args.runs):
            for k, cmd in tools.items():  # alternate, so load drift hits every tool alike
                runs[k].append(tp.run_process(cmd, cwd=tempfile.gettempdir()))
        load1 = tp.loadavg()
    results = {k: tp.startup_summary(v) for k, v in runs.items()}
    fer = results.get(FER_TOOL, {})
    rep = {"kind": "benchmark", "name": "bench-startup", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "photo": str(args.photo), "runs_per_tool": args.runs, "loadavg_start": load0, "loadavg_end": load1,
           "results": results,
           "time_ratio_vs_fer": {k: r["median_s"] / fer["median_s"] for k, r in results.items()
                                 if "median_s" in r and "median_s" in fer and k != FER_TOOL},
           "command": command_line(None if argv is None else [__file__, *argv]), "env": environment()}
    markdown = tp.startup_markdown(rep)
    tp.save_report(args.out, "benchmark", rep, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
