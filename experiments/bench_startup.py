"""Time to the first label for one photo, whole process, side by side with the `fer` package.

    python experiments/bench_startup.py                      # default model, 7 runs each, shared photo
    python experiments/bench_startup.py --models vggbn vggbn-kd --runs 5 --fer-python none

Method: each run is a fresh process started from this script, timed from spawn to exit (wall clock), with
its peak RSS from ``os.wait4``. Ours is the documented command
``python -m fer_hybrid.realtime --model NAME --source PHOTO --no-display --jsonl OUT``; fer's is the
smallest script that gives a label: ``from fer import FER; FER().detect_emotions(cv2.imread(PHOTO))``, run
with the python of a venv where `fer` is installed (default /work/venv-fer). Runs alternate between the
tools so that drift in machine load hits both. Reports median and min seconds and median peak RSS, plus
/proc/loadavg before and after. Writes experiments/reports/bench-startup/benchmark.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "video" / "single_face.jpg"
FER_PYTHON = Path("/work/venv-fer/bin/python")
OUT = ROOT / "experiments" / "reports" / "bench-startup"
FER_SCRIPT = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; import cv2\n"
              "try:\n    from fer import FER\nexcept ImportError:\n    from fer.fer import FER\n"
              "faces = FER().detect_emotions(cv2.imread(sys.argv[1]))\n"
              "print(max(faces[0]['emotions'], key=faces[0]['emotions'].get) if faces else 'no face')\n")


def run_with_rusage(cmd: list[str]) -> dict:
    """Run ``cmd`` -> wall seconds from spawn to exit, the child's own peak RSS (MB, from os.wait4), exit code,
    last stdout line and, on failure, the last stderr line."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {"seconds": seconds, "rss_mb": usage.ru_maxrss / 1024, "code": proc.returncode,
            "last_line": (stdout.strip().splitlines() or [""])[-1][:200],
            "error": None if proc.returncode == 0 else (stderr.strip().splitlines() or ["?"])[-1][:300]}


def summarise(runs: list[dict]) -> dict:
    ok = [r for r in runs if r["code"] == 0]
    if not ok:
        return {"error": runs[-1]["error"] if runs else "no runs"}
    s = [r["seconds"] for r in ok]
    return {"runs": len(ok), "median_s": float(np.median(s)), "min_s": float(np.min(s)),
            "median_rss_mb": float(np.median([r["rss_mb"] for r in ok])), "example_output": ok[-1]["last_line"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photo", type=Path, default=PHOTO)
    ap.add_argument("--models", nargs="*", default=[None], help="model names (default: the shipped default)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--fer-python", default=str(FER_PYTHON), help="python of a venv with `fer` ('none' = skip)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if not args.photo.is_file():
        print(f"error: photo not found: {args.photo}", file=sys.stderr)
        return 2
    from fer_hybrid import _atomic
    from fer_hybrid.evaluate import command_line, environment

    tools = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in args.models:
            cmd = [sys.executable, "-m", "fer_hybrid.realtime", "--source", str(args.photo), "--no-display",
                   "--jsonl", str(Path(tmp) / "out.jsonl")] + (["--model", m] if m else [])
            tools[f"fer_hybrid ({m or 'default'})"] = cmd
        if args.fer_python != "none" and Path(args.fer_python).exists():
            script = Path(tmp) / "fer_one_photo.py"
            script.write_text(FER_SCRIPT)
            tools["fer (FER().detect_emotions)"] = [args.fer_python, str(script), str(args.photo)]
        load0 = open("/proc/loadavg").read().split()[:3]
        runs = {k: [] for k in tools}
        for _ in range(args.runs):
            for k, cmd in tools.items():  # alternate, so load drift hits every tool alike
                runs[k].append(run_with_rusage(cmd))
        load1 = open("/proc/loadavg").read().split()[:3]
    results = {k: summarise(v) for k, v in runs.items()}
    fer = results.get("fer (FER().detect_emotions)", {})
    ratios = {k: r["median_s"] / fer["median_s"] for k, r in results.items()
              if "median_s" in r and "median_s" in fer and not k.startswith("fer (")}
    rep = {"kind": "benchmark", "name": "bench-startup", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "photo": str(args.photo), "runs_per_tool": args.runs, "loadavg_start": load0, "loadavg_end": load1,
           "results": results, "time_ratio_vs_fer": ratios, "command": command_line(), "env": environment()}
    lines = [f"# Time to the first label for one photo ({rep['date'][:10]})", "",
             f"Whole process, spawn to exit, {args.runs} runs per tool alternating; photo `{args.photo.name}`; "
             f"load average {' '.join(load0)} at start, {' '.join(load1)} at end.", "",
             "| tool | median s | min s | median peak RSS MB | output |", "|---|---:|---:|---:|---|"]
    for k, r in results.items():
        lines.append(f"| {k} | error: {r['error']} |||" if "error" in r else
                     f"| {k} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['median_rss_mb']:.0f} | {r['example_output'][:60]} |")
    if ratios:
        lines += ["", "Median time relative to fer: " + ", ".join(f"{k}: {v:.2f}x" for k, v in ratios.items())]
    lines += ["", f"Command: `{rep['command']}`", ""]
    args.out.mkdir(parents=True, exist_ok=True)
    _atomic.write_text(args.out / "benchmark.json", json.dumps(rep, indent=2) + "\n")
    _atomic.write_text(args.out / "benchmark.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
