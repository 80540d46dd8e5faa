"""Emotion timeline of one video: per face track, its smoothed probabilities over time, and below them
the smoothed label of every frame as a coloured strip (grey: the model had no answer).

Input is the long table (:mod:`fer_hybrid.inference.table`): ``time_ms``, ``track_id``, ``s_<class>``,
``smoothed_label``. Frames where a track is absent are gaps in its lines and strip.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import _atomic
from ..labels import STUDY_EMOTIONS

MAX_TRACKS = 6  # tracks drawn (the longest ones); the summary table has every track
COLORS = {"angry": "#d62728", "fear": "#9467bd", "happy": "#2ca02c", "sad": "#1f77b4", "surprise": "#ff7f0e",
          "disgust": "#8c564b", "neutral": "#7f7f7f"}
NO_ANSWER = "#c7c7c7"


def class_colors(classes: Sequence[str]) -> dict[str, str]:
    fallback = iter(["#17becf", "#bcbd22", "#e377c2", "#aec7e8", "#98df8a"])
    return {c: COLORS.get(c) or next(fallback, "#000000") for c in classes}


def tracks_by_length(df) -> list[int]:
    """Track ids ordered by number of frames (longest first, ties by id)."""
    ids = df["track_id"].dropna()
    counts = ids.value_counts()
    return sorted((int(t) for t in counts.index), key=lambda t: (-int(counts[t]), t))


def frame_step_ms(times: np.ndarray) -> float:
    """The typical time between frames (ms): the median positive step, 40 ms when there is none."""
    steps = np.diff(np.unique(times[np.isfinite(times)]))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 40.0


def timeline_figure(df, title: str = "", classes: Sequence[str] = STUDY_EMOTIONS, max_tracks: int = MAX_TRACKS):
    """A matplotlib Figure of the timeline of ``df`` (one video's long table); time axis in seconds."""
    from ..reports import pyplot

    plt = pyplot()
    colors = class_colors(classes)
    times = df["time_ms"].to_numpy(dtype=float)
    all_t = np.unique(times[np.isfinite(times)])
    step = frame_step_ms(times)
    tracks = tracks_by_length(df)
    shown = sorted(tracks[:max_tracks])
    if not shown:
        fig, ax = plt.subplots(figsize=(10, 2.2))
        ax.text(0.5, 0.5, "no face found in any frame", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, max(all_t[-1] / 1000 if all_t.size else 1.0, 1e-3))
        ax.set_yticks([])
        ax.set_xlabel("time (s)")
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        return fig
    ratios = [r for _ in shown for r in (4, 1)]
    fig, axes = plt.subplots(2 * len(shown), 1, figsize=(10, 0.6 + 2.3 * len(shown)), sharex=True,
                             gridspec_kw={"height_ratios": ratios, "hspace": 0.15})
    axes = np.atleast_1d(axes)
    x_end = (all_t[-1] + step) / 1000 if all_t.size else 1.0
    for k, tid in enumerate(shown):
        ax, strip = axes[2 * k], axes[2 * k + 1]
        tr = df[df["track_id"] == tid].sort_values("time_ms")
        t = tr["time_ms"].to_numpy(dtype=float)
        # reindex on every frame time so that frames without this track are gaps (NaN), not joined lines
        pos = np.searchsorted(all_t, t)
        for c in classes:
            y = np.full(all_t.size, np.nan)
            y[pos] = tr[f"s_{c}"].to_numpy(dtype=float)
            ax.plot(all_t / 1000, y, color=colors[c], linewidth=1.3, label=c)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"track {tid}\nsmoothed p", fontsize=8)
        ax.grid(alpha=0.3)
        labels = tr["smoothed_label"].astype(object).where(tr["smoothed_label"].notna(), None).tolist()
        # each frame's bar reaches the next frame's time (one typical step for the last frame)
        ends = np.append(all_t[1:], all_t[-1] + step)[pos]
        for c, col in list(colors.items()) + [(None, NO_ANSWER)]:
            bars = [(ti / 1000, (te - ti) / 1000) for ti, te, lab in zip(t, ends, labels) if lab == c]
            if bars:
                strip.broken_barh(bars, (0, 1), facecolors=col, linewidth=0)
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.set_ylabel("label", fontsize=8, rotation=0, ha="right", va="center")
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, 1.32), ncol=len(classes) + 1, fontsize=8,
                   frameon=False)
    axes[-1].set_xlim(0, x_end)
    axes[-1].set_xlabel("time (s)")
    more = f"; {len(tracks) - len(shown)} shorter track(s) not drawn" if len(tracks) > len(shown) else ""
    fig.suptitle(title + more, fontsize=10, y=0.995)
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - 0.75 / fig.get_figheight(), bottom=0.5 / fig.get_figheight())
    return fig


def timeline_png(df, title: str = "", classes: Sequence[str] = STUDY_EMOTIONS, dpi: int = 100) -> bytes:
    """The timeline of ``df`` as PNG bytes."""
    from ..reports import pyplot

    fig = timeline_figure(df, title, classes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return buf.getvalue()


def save_timeline(df, path: str | os.PathLike, title: str = "", classes: Sequence[str] = STUDY_EMOTIONS) -> Path:
    """Write the timeline PNG of ``df`` to ``path`` atomically."""
    return _atomic.write_bytes(path, timeline_png(df, title, classes))
