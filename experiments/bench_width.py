"""Choose the student's width by batch-1 milliseconds per face, before training it.

    python experiments/bench_width.py [--widths 48-96-192-384 64-128-256-512]
    python experiments/bench_width.py --pause-pid-file /tmp/fer_training.pid   # beside a background training
    python experiments/bench_width.py --views 1 --widths 64-128-256-512 72-144-288-576 --out experiments/reports/bench-width-1view

Method:
1. Candidates: ``vggbn`` at each width (the shipped 48-96-192-384 and the wider 64-128-256-512 of issue 21),
   random weights (speed does not depend on them), flip TTA inside an ONNX graph (``--views 2``, the default) or
   one view per face (``--views 1``: a network that runs without TTA), run by onnxruntime with the Analyzer's
   thread count: exactly the form a shipped default runs in.
2. Reference: the shipped default through ``load_predictor``, in the same process.
3. Timing: alternating blocks of batch-1 calls (:func:`fer_hybrid.evaluation.width_timing.time_widths`);
   ``--pause-pid-file PIDFILE`` stops a background training (the python process whose pid the file holds) for
   the measurement (SIGSTOP, SIGCONT after), so that the figures are idle figures. The bar is 8 ms per face.
Writes ``benchmark.json`` + ``benchmark.md`` to ``--out`` (default experiments/reports/bench-width/).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "experiments" / "reports" / "bench-width"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", nargs="+", default=["48-96-192-384", "64-128-256-512"],
                    help="candidate widths, each as W1-W2-W3-W4 (default: the shipped and the wider vggbn)")
    ap.add_argument("--views", type=int, choices=[1, 2], default=2,
                    help="candidates run on the face and its mirror (2, flip TTA; default) or on the face only (1)")
    ap.add_argument("--reference", default="default", help="a shipped model timed beside them ('none' = skip)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: as the Analyzer runs)")
    ap.add_argument("--repeats", type=int, default=7, help="alternating timing blocks (default 7)")
    ap.add_argument("--calls", type=int, default=50, help="batch-1 calls per block (default 50)")
    ap.add_argument("--pause-pid-file", default=None,
                    help="file holding the pid of a background job (the python process itself) to stop while timing")
    ap.add_argument("--out", type=Path, default=OUT, help=f"report folder (default {OUT})")
    args = ap.parse_args(argv)
    from fer_hybrid.cnn.vggbn import parse_widths

    try:
        candidates = [parse_widths(w) for w in args.widths]
    except ValueError as e:
        ap.error(str(e))
    from fer_hybrid.keras_io import default_intra_op_threads

    threads = args.threads or default_intra_op_threads()
    os.environ.update({"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"})

    from fer_hybrid import artifacts
    from fer_hybrid.evaluate import command_line, environment
    from fer_hybrid.evaluation import throughput as tp
    from fer_hybrid.evaluation.timing import paused
    from fer_hybrid.evaluation.width_timing import time_widths, width_markdown
    from fer_hybrid.predictors import load_predictor

    reference = {}
    if args.reference != "none":
        name = artifacts.read_manifest().get("default") if args.reference == "default" else args.reference
        try:
            reference[f"{name} (shipped)"] = load_predictor(name).predict_proba
        except (OSError, ValueError) as e:  # ArtifactMissingError, ArtifactError, unknown name
            print(f"error: reference model {name!r}: {e}", file=sys.stderr)
            return 2
    with paused(args.pause_pid_file) as pid:
        load0 = tp.loadavg()
        rows = time_widths(candidates, threads=threads, repeats=args.repeats, calls=args.calls, reference=reference,
                           views=args.views)
        load1 = tp.loadavg()
    conditions = (f"background job {pid} paused (SIGSTOP) during the timing" if pid else
                  "nothing paused; see the load average for other work on the machine")
    rep = {"kind": "benchmark", "name": "bench-width", "date": dt.datetime.now(dt.timezone.utc).isoformat(),
           "purpose": "Batch-1 ms per face of candidate student widths as they would run (ONNX graph, onnxruntime; "
                      + ("flip TTA inside the graph" if args.views == 2 else "one view per face, no TTA")
                      + "), beside the shipped default.",
           "threads": threads, "repeats": args.repeats, "calls": args.calls, "loadavg_start": load0,
           "loadavg_end": load1, "conditions": conditions, "rows": rows,
           "command": command_line(None if argv is None else [__file__, *argv]), "env": environment()}
    markdown = width_markdown(rep)
    tp.save_report(args.out, "benchmark", rep, markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
