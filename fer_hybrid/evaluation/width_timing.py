"""Batch-1 speed of candidate student widths, as they would run (ONNX graph, with or without the flip TTA).

The student's architecture is chosen by measured milliseconds per face before any training: the speed of a
network does not depend on its weights, so each candidate is built with random weights, wrapped with the
registry's flip TTA (:func:`fer_hybrid.cnn.export.with_flip_tta`) or left single-view (``views=1``), exported
to ONNX in a temporary folder and timed with :class:`fer_hybrid.onnx_model.OnnxPredictor` in alternating blocks beside a reference model
(the shipped default), so that load changes hit all alike.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

BAR_MS = 8.0  # the realtime budget per face (issue 21)


def width_name(widths: Sequence[int]) -> str:
    """(48, 96, 192, 384) -> "vggbn 48-96-192-384"."""
    return "vggbn " + "-".join(str(int(w)) for w in widths)


def time_widths(candidates: Sequence[Sequence[int]], *, threads: int, repeats: int = 5, calls: int = 50,
                reference: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
                seed: int = 0, views: int = 2) -> list[dict]:
    """One row per candidate width (then per reference predictor): {name, widths, views, params, gflop_per_face,
    ms_per_face (median over ``repeats`` blocks of ``calls`` batch-1 calls), blocks_ms, within_bar}.
    Candidates run in an ONNX graph on ``threads`` intra-op threads, with the flip TTA (``views=2``: the face and
    its mirror) or without it (``views=1``); the ONNX files live in a temporary folder that is removed before
    returning. ValueError for any other ``views``."""
    from ..cnn.export import export_onnx, with_flip_tta
    from ..cnn.vggbn import build_vggbn
    from ..onnx_model import OnnxPredictor
    from .onnx_check import alternating_ms

    if views not in (1, 2):
        raise ValueError(f"views must be 1 (the face) or 2 (the face and its mirror), got {views!r}")
    face = np.random.default_rng(seed).integers(0, 256, (1, 48, 48), dtype=np.uint8).astype(np.float32)
    rows, predictors = [], {}
    with tempfile.TemporaryDirectory(prefix="fer_width_") as tmp:
        for widths in candidates:
            name = width_name(widths)
            net = build_vggbn(widths=widths)
            graph = with_flip_tta(net, name=name.replace(" ", "_").replace("-", "_")) if views == 2 else net
            path = export_onnx(graph, Path(tmp) / f"{name.replace(' ', '_')}.onnx")
            predictors[name] = OnnxPredictor(path, name, threads=threads).predict_proba
            rows.append({"name": name, "widths": [int(w) for w in widths], "views": views,
                         "params": int(net.count_params()), "gflop_per_face": vggbn_gflop(widths, views=views),
                         "runtime": "onnxruntime, " + ("flip TTA in the graph" if views == 2 else "single view")})
        for name, fn in (reference or {}).items():
            predictors[name] = fn
            rows.append({"name": name, "widths": None, "views": None, "params": None, "gflop_per_face": None,
                         "runtime": "the registry's predictor (reference)"})
        blocks, ms = alternating_ms(predictors, face, repeats=repeats, calls=calls)
    for row in rows:
        row.update(ms_per_face=ms[row["name"]], blocks_ms=blocks[row["name"]], within_bar=ms[row["name"]] <= BAR_MS)
    return rows


def vggbn_gflop(widths: Sequence[int], size: int = 48, convs_per_block: int = 2, views: int = 2) -> float:
    """Multiply-adds x 2 of the 3x3 convolutions of :func:`fer_hybrid.cnn.vggbn.build_vggbn` per face, times
    ``views`` (2: the face and its mirror), in GFLOP. The head is negligible and left out."""
    flops, cin, side = 0, 1, size
    for w in widths:
        for _ in range(convs_per_block):
            flops += 2 * 9 * cin * w * side * side
            cin = w
        side //= 2
    return flops * views / 1e9


def width_markdown(rep: Mapping) -> str:
    """The benchmark's markdown: one row per candidate and reference, with the 8 ms bar."""
    lines = [f"# {rep['name']}", "", rep.get("purpose", ""), "",
             f"- command: `{rep.get('command', '')}`",
             f"- threads: {rep['threads']}; {rep['repeats']} alternating blocks of {rep['calls']} batch-1 calls; "
             f"load average before/after: {rep.get('loadavg_start')} / {rep.get('loadavg_end')}",
             f"- timing conditions: {rep.get('conditions', 'not recorded')}", "",
             f"| network | views per face | params | GFLOP per face | ms per face | ≤ {BAR_MS:g} ms |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rep["rows"]:
        params = f"{r['params'] / 1e6:.2f} M" if r.get("params") else "-"
        gflop = f"{r['gflop_per_face']:.2f}" if r.get("gflop_per_face") else "-"
        views = {1: "1", 2: "2 (flip TTA)"}.get(r.get("views", 2 if r.get("widths") else None), "as shipped")
        lines.append(f"| {r['name']} | {views} | {params} | {gflop} | {r['ms_per_face']:.2f} | "
                     f"{'yes' if r['within_bar'] else 'no'} |")
    return "\n".join(lines) + "\n"
