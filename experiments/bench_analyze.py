"""Throughput of the batch analysis (``python -m fer_hybrid.analyze``) with 1 and 2 workers: files/s, frames/s.

    python experiments/bench_analyze.py                        # 6 clips x 72 frames of the shared video
    python experiments/bench_analyze.py --clips 3 --frames 24 --out /tmp/bench   # smoke run

Method. ``--clips`` short clips of ``--frames`` frames each are cut from ``--video`` (consecutive segments,
at 640 px wide, OpenCV mp4v) into a temporary folder; without the shared video, copies of the bundled
sample are used. The same batch then runs through :func:`fer_hybrid.analysis.run_batch` with
``workers=1`` (in-process, no Dask) and ``workers=2`` (a Dask LocalCluster of 2 single-threaded
processes, TensorFlow limited to 1 thread each), alternating, ``--repeats`` times each, every run into a
fresh output folder. A run's ``process`` time covers analysing every clip and writing its outputs;
``setup`` is starting the cluster and loading the model in each worker (both reported). files/s and
frames/s are computed over ``process``; end-to-end rates include setup. The tables of the two worker
counts are compared byte for byte. The load average is recorded before and after every run, and the
share of CPU busy in the 2 s before the first (from 25 % on, the report says "under load"): on a machine
shared with other jobs the numbers are timings under that load. Clips, load, the CPU check and the report
come from :mod:`fer_hybrid.evaluation.throughput`. Writes ``scaling.json``, ``scaling.md`` and
``scaling.png`` to ``--out`` (default experiments/reports/analyze-scaling/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fer_hybrid.evaluation import throughput as tp  # noqa: E402

VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "analyze-scaling"
BUSY = 0.25  # share of all cores busy before the runs above which the timings count as taken under load


def run_once(clips: list[Path], out: Path, settings, workers: int) -> dict:
    """One batch run into ``out`` -> its rates over processing and end to end, with the load around it."""
    from fer_hybrid.analysis import run_batch

    before = tp.loadavg()
    res = run_batch(clips, out, settings, workers=workers, force=True, progress=False)
    t, files = res.timings, res.done
    return {"workers": res.workers, "files": files, "errors": res.errors, "frames": res.frames,
            "setup_s": t["setup"], "process_s": t["process"], "total_s": t["total"],
            "files_per_s": round(files / t["process"], 3), "frames_per_s": round(res.frames / t["process"], 2),
            "files_per_s_end_to_end": round(files / t["total"], 3),
            "frames_per_s_end_to_end": round(res.frames / t["total"], 2),
            "loadavg_before": before, "loadavg_after": tp.loadavg()}


def tables(out: Path) -> dict[str, bytes]:
    """The bytes of every table a run wrote (to compare runs byte for byte)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".parquet")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO, help=f"video to cut clips from (default {VIDEO})")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=72, help="frames per clip")
    ap.add_argument("--width", type=int, default=640, help="clip width in px")
    ap.add_argument("--repeats", type=int, default=2, help="runs per worker count (alternating 1, 2, 1, 2, ...)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--out", "--reports", type=Path, default=OUT, help=f"report folder (default {OUT})")
    args = ap.parse_args(argv)
    if min(args.clips, args.frames, args.width, args.repeats) < 1:
        print("bench_analyze: error: --clips, --frames, --width and --repeats must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

    import distributed

    from fer_hybrid.analysis import make_settings
    from fer_hybrid.analysis.batch import tf_thread_env
    from fer_hybrid.evaluate import command_line, environment

    os.environ.update(tf_thread_env(1))
    settings = make_settings(args.model, args.models_dir, tf_threads=1)
    start_load = tp.loadavg()
    busy = tp.cpu_busy_fraction()  # the load average lags (a run that just ended still shows); this does not
    with tempfile.TemporaryDirectory(prefix="bench_analyze-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        if args.video.is_file():
            clips = tp.cut_clips(args.video, args.clips, args.frames, args.width, tmp / "clips")
            note = f"consecutive segments of {args.video.name}, {args.width} px wide"
        else:
            clips = tp.sample_clips(args.clips, tmp / "clips")
            note = f"copies of the bundled sample ({args.video} not found)"
        runs, failed, outs = [], [], {}
        for rep in range(args.repeats):
            for workers in (1, 2):
                out = tmp / f"out-w{workers}-r{rep}"
                try:
                    runs.append(run_once(clips, out, settings, workers))
                except OSError as e:  # e.g. the cluster did not come up in time: recorded, the others go on
                    failed.append({"workers": workers, "repeat": rep, "error": f"{type(e).__name__}: {e}",
                                   "loadavg": tp.loadavg()})
                    print(f"run with {workers} worker(s) failed: {failed[-1]['error']}", flush=True)
                    continue
                outs.setdefault(workers, out)
                print(f"run {len(runs)}: {workers} worker(s): {runs[-1]['frames']} frames, "
                      f"{runs[-1]['frames_per_s']:.1f} frames/s, setup {runs[-1]['setup_s']:.1f} s, "
                      f"load {runs[-1]['loadavg_after']}", flush=True)
        identical = len(outs) == 2 and tables(outs[1]) == tables(outs[2])
    rep = {
        "kind": "analyze-scaling", "command": command_line(None if argv is None else [__file__, *argv]),
        "model": settings.model, "model_fingerprint": settings.model_fingerprint,
        "settings": {"detect_every": settings.detect_every, "detect_width": settings.detect_width,
                     "tf_threads": settings.tf_threads, "pipeline": settings.pipeline},
        "clips": len(clips), "frames_per_clip": runs[0]["frames"] // max(1, len(clips)) if runs else None,
        "input_note": note, "cpu_busy_before": busy, "under_load": busy >= BUSY,
        "load_note": tp.scaling_load_note(busy, busy >= BUSY),
        "loadavg_start": start_load, "loadavg_end": tp.loadavg(), "tables_identical": identical,
        "runs": runs, "failed_runs": failed, "summary": tp.scaling_summary(runs), "dask": distributed.__version__,
        "environment": environment(), "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    tp.scaling_plot(rep, args.out / "scaling.png")
    tp.save_report(args.out, "scaling", rep, tp.scaling_markdown(rep))
    s = rep["summary"]
    rates = ", ".join(f"{w} worker(s) {s[w]['frames_per_s']:.1f} frames/s" for w in ("1", "2") if w in s)
    print(f"{rates}; tables identical: {identical}; failed runs: {len(failed)} -> {args.out}/scaling.md")
    return 0 if identical and not failed and all(r["errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
