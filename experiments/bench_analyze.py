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
counts are compared byte for byte. /proc/loadavg is recorded before and after every run: on a machine
shared with other jobs the numbers are timings under that load. Writes ``scaling.json``, ``scaling.md``
and ``scaling.png`` to ``--out`` (default experiments/reports/analyze-scaling/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "video" / "WolfgangLanger_Pexels.mp4"
OUT = ROOT / "experiments" / "reports" / "analyze-scaling"
sys.path.insert(0, str(ROOT))


def loadavg() -> list[float] | None:
    """The three load averages of /proc/loadavg (1, 5, 15 min), None where unavailable."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cut_clips(video: Path, n: int, frames: int, width: int, folder: Path) -> list[Path]:
    """n clips of ``frames`` consecutive frames of ``video`` (resized to ``width`` px) -> mp4 files."""
    import cv2

    from fer_hybrid.video import AtomicVideoWriter, open_source

    clips, writer = [], None
    with open_source(str(video)) as src:
        for frame in src:
            k, i = divmod(frame.index, frames)
            if k >= n:
                break
            h, w = frame.image.shape[:2]
            size = (width, int(round(h * width / w / 2)) * 2)
            if i == 0:
                clips.append(folder / f"clip{k:02d}.mp4")
                writer = AtomicVideoWriter(clips[-1], src.fps, size)
            writer.write(cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA))
            if i == frames - 1:
                writer.close()
                writer = None
    if writer is not None:
        writer.close()
    return clips


def copies_of_sample(n: int, folder: Path) -> list[Path]:
    from fer_hybrid.video import SAMPLE

    clips = [folder / f"sample{k:02d}.mp4" for k in range(n)]
    for c in clips:
        shutil.copy(SAMPLE, c)
    return clips


def run_once(clips: list[Path], out: Path, settings, workers: int) -> dict:
    from fer_hybrid.analysis import run_batch

    before = loadavg()
    res = run_batch(clips, out, settings, workers=workers, force=True, progress=False)
    after = loadavg()
    t = res.timings
    files = res.done
    return {"workers": res.workers, "files": files, "errors": res.errors, "frames": res.frames,
            "setup_s": t["setup"], "process_s": t["process"], "total_s": t["total"],
            "files_per_s": round(files / t["process"], 3), "frames_per_s": round(res.frames / t["process"], 2),
            "files_per_s_end_to_end": round(files / t["total"], 3),
            "frames_per_s_end_to_end": round(res.frames / t["total"], 2),
            "loadavg_before": before, "loadavg_after": after}


def tables(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix in (".csv", ".parquet")}


def summarise(runs: list[dict]) -> dict:
    """Per worker count: the median over repeats of each rate, and the 2-over-1 speed-up."""
    import numpy as np

    by = {}
    for w in sorted({r["workers"] for r in runs}):
        rs = [r for r in runs if r["workers"] == w]
        by[str(w)] = {k: round(float(np.median([r[k] for r in rs])), 3) for k in
                      ("files_per_s", "frames_per_s", "files_per_s_end_to_end", "frames_per_s_end_to_end",
                       "setup_s", "process_s", "total_s")}
        by[str(w)]["runs"] = len(rs)
    if "1" in by and "2" in by:
        by["speedup_2_over_1"] = round(by["2"]["frames_per_s"] / by["1"]["frames_per_s"], 3)
        by["speedup_2_over_1_end_to_end"] = round(by["2"]["frames_per_s_end_to_end"]
                                                  / by["1"]["frames_per_s_end_to_end"], 3)
    return by


def to_markdown(rep: dict) -> str:
    s = rep["summary"]
    lines = [
        "# Batch analysis: 1 vs 2 workers", "",
        f"- command: `{rep['command']}`",
        f"- inputs: {rep['clips']} clips x {rep['frames_per_clip']} frames ({rep['input_note']}); model "
        f"`{rep['model']}`; detection every {rep['settings']['detect_every']} frames at "
        f"{rep['settings']['detect_width']} px; TensorFlow threads per process {rep['settings']['tf_threads']}",
        "- 1 worker = in-process (no Dask); 2 workers = Dask LocalCluster, 2 processes x 1 thread, started and "
        "stopped by each run",
        f"- {'**timings taken under load**' if rep['under_load'] else 'idle machine'}: {rep['load_note']} "
        "Load average (1, 5, 15 min) at start "
        f"{rep['loadavg_start']}, at end {rep['loadavg_end']}; per run below.",
        f"- tables and summaries identical between 1 and 2 workers (byte for byte): **{rep['tables_identical']}**",
        f"- machine: {rep['environment']['cpu']} x {rep['environment']['cpu_count']} cores; python "
        f"{rep['environment']['versions'].get('python')}, dask {rep['dask']}; date {rep['date']}; git "
        f"{rep['environment'].get('git_commit')}",
        "", "| workers | runs | files/s | frames/s | end-to-end files/s | end-to-end frames/s | setup s | process s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in ("1", "2"):
        if w in s:
            r = s[w]
            lines.append(f"| {w} | {r['runs']} | {r['files_per_s']:.3f} | {r['frames_per_s']:.2f} | "
                         f"{r['files_per_s_end_to_end']:.3f} | {r['frames_per_s_end_to_end']:.2f} | "
                         f"{r['setup_s']:.1f} | {r['process_s']:.1f} |")
    if "speedup_2_over_1" in s:
        lines += ["", f"2 workers over 1 (median frames/s): **{s['speedup_2_over_1']:.2f}x** while processing, "
                      f"{s['speedup_2_over_1_end_to_end']:.2f}x end to end (with cluster start and model loading)."]
    lines += ["", "Medians over the runs. Rates over `process` (analysing the clips and writing every output); "
                  "end-to-end rates include `setup` (cluster start, model loading in each worker). A 1-worker run "
                  "after the first reuses the model this process already loaded (setup near 0 s); every 2-worker "
                  "run starts a new cluster.", "",
              "![frames/s](scaling.png)", "", "## Runs", "",
              "| # | workers | frames | process s | setup s | frames/s | load before | load after |",
              "|---:|---:|---:|---:|---:|---:|---|---|"]
    for i, r in enumerate(rep["runs"], 1):
        lines.append(f"| {i} | {r['workers']} | {r['frames']} | {r['process_s']:.2f} | {r['setup_s']:.2f} | "
                     f"{r['frames_per_s']:.2f} | {r['loadavg_before']} | {r['loadavg_after']} |")
    if rep["failed_runs"]:
        lines += ["", "## Failed runs", ""] + [f"- {f['workers']} worker(s), repeat {f['repeat']}: `{f['error']}` "
                                               f"(load {f['loadavg']})" for f in rep["failed_runs"]]
    return "\n".join(lines) + "\n"


def save_plot(rep: dict, path: Path) -> Path:
    from fer_hybrid.reports import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for r in rep["runs"]:
        ax.scatter(r["workers"], r["frames_per_s"], color="grey", s=14, zorder=3)
    ws = [w for w in ("1", "2") if w in rep["summary"]]
    ax.bar([int(w) for w in ws], [rep["summary"][w]["frames_per_s"] for w in ws], width=0.5, color="#1f77b4",
           label="median frames/s")
    ax.set_xticks([int(w) for w in ws])
    ax.set_xlabel("workers")
    ax.set_ylabel("frames/s (processing)")
    ax.set_title(f"analyze: {rep['clips']} clips x {rep['frames_per_clip']} frames, {rep['model']}"
                 + (" (under load)" if rep["under_load"] else ""),
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


BUSY = 0.25  # share of all cores busy before the runs above which the timings count as taken under load


def cpu_busy_fraction(seconds: float = 2.0) -> float:
    """Share of all CPU time that was busy over the next ``seconds`` (from /proc/stat; 0.0 where unavailable)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)   # total, idle + iowait
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except OSError:
        return 0.0
    return round(1.0 - (i1 - i0) / max(1, t1 - t0), 3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, default=VIDEO, help=f"video to cut clips from (default {VIDEO})")
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--frames", type=int, default=72, help="frames per clip")
    ap.add_argument("--width", type=int, default=640, help="clip width in px")
    ap.add_argument("--repeats", type=int, default=2, help="runs per worker count (alternating 1, 2, 1, 2, ...)")
    ap.add_argument("--model", default="default")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    if min(args.clips, args.frames, args.width, args.repeats) < 1:
        print("bench_analyze: error: --clips, --frames, --width and --repeats must be >= 1", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

    from fer_hybrid import _atomic
    from fer_hybrid.analysis import make_settings
    from fer_hybrid.analysis.batch import tf_thread_env
    from fer_hybrid.evaluate import command_line, environment

    os.environ.update(tf_thread_env(1))
    settings = make_settings(args.model, args.models_dir, tf_threads=1)
    start_load = loadavg()
    busy_before = cpu_busy_fraction()  # the load average lags (a run that just ended still shows); this does not
    with tempfile.TemporaryDirectory(prefix="bench_analyze-") as tmp:
        tmp = Path(tmp)
        (tmp / "clips").mkdir()
        if args.video.is_file():
            clips = cut_clips(args.video, args.clips, args.frames, args.width, tmp / "clips")
            note = f"consecutive segments of {args.video.name}, {args.width} px wide"
        else:
            clips = copies_of_sample(args.clips, tmp / "clips")
            note = f"copies of the bundled sample ({args.video} not found)"
        runs, failed, outs = [], [], {}
        for rep in range(args.repeats):
            for workers in (1, 2):
                out = tmp / f"out-w{workers}-r{rep}"
                try:
                    runs.append(run_once(clips, out, settings, workers))
                except OSError as e:  # e.g. the cluster did not come up in time: recorded, the others go on
                    failed.append({"workers": workers, "repeat": rep, "error": f"{type(e).__name__}: {e}",
                                   "loadavg": loadavg()})
                    print(f"run with {workers} worker(s) failed: {failed[-1]['error']}", flush=True)
                    continue
                outs.setdefault(workers, out)
                print(f"run {len(runs)}: {workers} worker(s): {runs[-1]['frames']} frames, "
                      f"{runs[-1]['frames_per_s']:.1f} frames/s, setup {runs[-1]['setup_s']:.1f} s, "
                      f"load {runs[-1]['loadavg_after']}", flush=True)
        identical = len(outs) == 2 and tables(outs[1]) == tables(outs[2])
        n_frames = runs[0]["frames"] // max(1, len(clips))
    import distributed

    rep = {
        "kind": "analyze-scaling", "command": command_line(argv and [sys.argv[0], *argv]),
        "model": settings.model, "model_fingerprint": settings.model_fingerprint,
        "settings": {"detect_every": settings.detect_every, "detect_width": settings.detect_width,
                     "tf_threads": settings.tf_threads, "pipeline": settings.pipeline},
        "clips": len(clips), "frames_per_clip": n_frames, "input_note": note,
        "cpu_busy_before": busy_before,
        "under_load": busy_before >= BUSY,
        "load_note": ("the cores were shared with other work while these timings were taken (CPU "
                      f"{100 * busy_before:.0f} % busy in the 2 s before the first run), so absolute rates are lower "
                      "than on an idle machine and the 2-worker speed-up is limited by the CPU the other work leaves free."
                      if busy_before >= BUSY else
                      "nothing else was running. One worker already uses both cores: its videos are "
                      "pipelined (decoding and detection/tracking in a second thread while the model classifies), "
                      "so a second worker process adds contention and Dask overhead, not a free core (the CPU column of "
                      "experiments/reports/bench-realtime shows how busy one pipelined process keeps the 2 cores)."),
        "loadavg_start": start_load, "loadavg_end": loadavg(), "tables_identical": identical,
        "runs": runs, "failed_runs": failed, "summary": summarise(runs), "dask": distributed.__version__,
        "environment": environment(), "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    save_plot(rep, args.out / "scaling.png")
    _atomic.write_text(args.out / "scaling.md", to_markdown(rep))
    _atomic.write_text(args.out / "scaling.json", json.dumps(rep, indent=2) + "\n")
    s = rep["summary"]
    rates = ", ".join(f"{w} worker(s) {s[w]['frames_per_s']:.1f} frames/s" for w in ("1", "2") if w in s)
    print(f"{rates}; tables identical: {identical}; failed runs: {len(failed)} -> {args.out}/scaling.md")
    return 0 if identical and not failed and all(r["errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
