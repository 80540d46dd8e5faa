"""Many inputs -> per-input tables, summaries and plots + one ``index.csv``; resumable; in-process or on Dask.

Inputs are video files, image files, folders or ``"sample"`` (the bundled clip). A folder gives one
photo-collection input for its images (``IMAGE_EXTS``, non-recursive) and one video input per video file
in it. Each input gets a folder ``OUT/<name>/`` with

- ``table.csv|parquet``: the long table (:mod:`fer_hybrid.inference.table`), ``source`` = the input as
  given; photos have ``time_ms`` empty and no track ids;
- ``summary.csv|parquet``: :func:`~fer_hybrid.analysis.summary.video_summary` (per track) or
  :func:`~fer_hybrid.analysis.summary.photo_summary` (label counts);
- ``timeline.png`` (videos) or ``contact_sheet.png`` (photos);
- ``meta.json``, written last: content sha256, model and its fingerprint, settings, counts, seconds.

Resume: an input whose ``meta.json`` holds the same key (sha256 of content hash + model name + model
fingerprint (artifact sha256 and manifest entry) + result-changing settings + output format) and whose
listed outputs exist is not run again (status ``cached``). Every file is written atomically
(:mod:`fer_hybrid._atomic`). An input that fails gets status ``error`` and a one-line message in
``index.csv``; the others go on.

Execution: ``workers=1`` runs in this process. ``workers=N>1`` starts a Dask ``LocalCluster`` of N
single-threaded worker processes (TensorFlow limited to ``tf_threads`` threads in each) and stops it at
the end; ``scheduler=ADDRESS`` uses an existing Dask cluster (workers must see the inputs at the same
paths and have the model; outputs are written by this process). Each process loads the model once
(:func:`worker_analyzer`). Results do not depend on the number of workers: each input is analysed on
its own (fresh face tracks), and ``index.csv`` is in input order.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .. import _atomic
from ..video import IMAGE_EXTS, SAMPLE

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts",
              ".mts", ".ogv")
INDEX = "index.csv"
META = "meta.json"
OUTPUT_SCHEMA = 1  # bump when the outputs of the same input and settings change
WORKER_START_TIMEOUT = 180  # s: local Dask workers must be up by then (TimeoutError otherwise)
MODEL_LOAD_TIMEOUT = 900    # s: every worker must have loaded the model by then
INDEX_COLUMNS = ["input", "kind", "output", "status", "error", "frames", "faces", "tracks", "frames_without_face",
                 "skipped_files", "model", "content_sha256"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What the batch runs with. ``model`` is a registered name; ``model_fingerprint`` the fingerprint of its
    artifact and manifest entry (:func:`model_fingerprint`); ``upsample`` None: 0 for videos, automatic
    for photos (see Analyzer)."""

    model: str
    model_fingerprint: str
    models_dir: str | None = None
    detect_every: int = 3
    smoothing: float = 0.5
    detect_width: int | None = 480
    upsample: int | None = None
    crop_margin: float = 0.1
    align: str = "auto"
    rescue_threshold: float | str | None = "auto"
    max_frames: int | None = None
    fmt: str = "csv"
    tf_threads: int = 1
    pipeline: bool = True

    def result_key(self, kind: str = "video") -> dict:
        """The settings that change the results of a ``kind`` input (not where models live, threads, or
        pipelining; for photos, not the video-only settings)."""
        from ..inference.analyzer import check_rescue

        skip = {"models_dir", "tf_threads", "pipeline"}
        if kind == "photos":
            skip |= {"detect_every", "smoothing", "detect_width", "max_frames"}
        else:
            skip |= {"rescue_threshold"}
        key = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        if "rescue_threshold" in key:
            key["rescue_threshold"] = check_rescue(self.rescue_threshold)   # "auto" as the value it stands for
        return key


@dataclasses.dataclass(frozen=True)
class Job:
    """One input: ``order`` in the command line, ``input`` as given (folder videos: folder/name), ``kind``
    "video" | "photos", ``output`` folder name under OUT, ``path`` absolute path (or "sample"), ``error``
    when it cannot be run at all."""

    order: int
    input: str
    kind: str
    output: str
    path: str = ""
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# Planning: inputs -> jobs, content hashes, resume keys
# ---------------------------------------------------------------------------------------------
def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Job]:
    """Jobs for the command-line inputs, in order (see the module docstring); unique output names;
    a missing path or a folder without images or videos becomes a job with ``error`` set."""
    planned: list[tuple[str, str, str, str | None]] = []  # (input, kind, path, error)
    for spec in map(str, inputs):
        if spec == "sample":
            planned.append((spec, "video", "sample", None))
            continue
        p = Path(spec).expanduser()
        if not p.exists():
            planned.append((spec, "", "", f"source not found: {spec}"))
        elif p.is_dir():
            files = sorted(f for f in p.iterdir() if f.is_file())
            images = [f for f in files if f.suffix.lower() in IMAGE_EXTS]
            videos = [f for f in files if f.suffix.lower() in VIDEO_EXTS]
            if images:
                planned.append((spec, "photos", str(p.resolve()), None))
            planned += [(str(Path(spec) / v.name), "video", str(v.resolve()), None) for v in videos]
            if not images and not videos:
                planned.append((spec, "", "", f"no images or videos in folder {spec}"))
        else:
            kind = "photos" if p.suffix.lower() in IMAGE_EXTS else "video"
            planned.append((spec, kind, str(p.resolve()), None))
    jobs, seen, names = [], set(), set()
    for spec, kind, path, error in planned:
        if path and (kind, path) in seen:
            continue  # the same file or folder twice
        seen.add((kind, path))
        output = ""
        if error is None:
            output = unique_name(output_name(spec, kind), names)
        jobs.append(Job(len(jobs), spec, kind, output, path, error))
    return jobs


def output_name(spec: str, kind: str) -> str:
    """A readable folder name for an input: the file stem (videos, single images) or the folder name."""
    p = Path(spec)
    raw = "sample" if spec == "sample" else (p.expanduser().resolve().name if p.is_dir() else p.stem)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or kind or "input"


def unique_name(name: str, taken: set[str]) -> str:
    out, k = name, 2
    while out in taken or out == INDEX:
        out, k = f"{name}-{k}", k + 1
    taken.add(out)
    return out


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_sha256(job: Job) -> str:
    """sha256 of a video or image file; for a folder, of the sorted (name, sha256) of its image files."""
    path = SAMPLE if job.path == "sample" else Path(job.path)
    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS):
        h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def run_key(job: Job, content: str, settings: Settings) -> str:
    blob = json.dumps({"schema": OUTPUT_SCHEMA, "kind": job.kind, "content_sha256": content,
                       "settings": settings.result_key(job.kind)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_meta(out: Path, job: Job, key: str) -> dict | None:
    """The meta.json of a previous run of ``job`` with the same key whose outputs all exist, else None."""
    folder = out / job.output
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key:
        return None
    if not all((folder / name).is_file() for name in meta.get("outputs", [])):
        return None
    return meta


# ---------------------------------------------------------------------------------------------
# The model: resolved once, loaded once per process
# ---------------------------------------------------------------------------------------------
def model_fingerprint(name: str, models_dir: str | os.PathLike | None = None) -> str:
    """sha256 over a registered model's artifact file (its sha256) and its entry in the models folder's
    manifest (which may carry e.g. its TTA policy). ValueError (unknown name) / ArtifactMissingError."""
    from ..artifacts import models_dir as default_models_dir
    from ..artifacts import read_manifest
    from ..predictors import ArtifactMissingError, list_models, model_spec

    root = Path(models_dir or default_models_dir())
    if name not in list_models(root=root):
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(list_models(root=root))}")
    entry = (read_manifest(root).get("models") or {}).get(name) or {}
    spec = model_spec(name)
    path = root / (entry.get("file") or spec.artifact)
    if not path.is_file():
        raise ArtifactMissingError(f"model {name!r} has no artifact at {path}; train it with `{spec.train_command}`")
    blob = json.dumps({"artifact_sha256": file_sha256(path), "manifest_entry": entry}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def make_settings(model: str = "default", models_dir: str | os.PathLike | None = None, **kw) -> Settings:
    """Settings with the model name resolved (``"default"``: the shipped default) and its sha256."""
    from ..predictors import default_model

    name = default_model(models_dir) if model == "default" else model
    md = None if models_dir is None else str(Path(models_dir).resolve())
    return Settings(model=name, model_fingerprint=model_fingerprint(name, md), models_dir=md, **kw)


def threads_per_process(workers: int = 1, scheduler: str | None = None) -> int:
    """Default intra-op threads of each analysing process: the live default
    (:func:`fer_hybrid.keras_io.default_intra_op_threads`) when one process works alone, 1 when several
    processes (``workers`` > 1, or a cluster's workers at ``scheduler``) share the cores."""
    from ..keras_io import default_intra_op_threads

    return default_intra_op_threads() if workers == 1 and not scheduler else 1


def tf_thread_env(threads: int | None) -> dict[str, str]:
    """Environment variables that limit TensorFlow's thread pools (read when TensorFlow starts)."""
    if not threads:
        return {}
    return {"TF_NUM_INTRAOP_THREADS": str(int(threads)), "TF_NUM_INTEROP_THREADS": "1"}


@functools.lru_cache(maxsize=2)
def _cached_analyzer(model: str, fingerprint: str, models_dir: str | None, crop_margin: float,
                     upsample: int | None, tf_threads: int, align: str = "auto",
                     rescue_threshold: float | str | None = "auto"):
    from ..inference import Analyzer
    from ..predictors import ArtifactError

    os.environ.update(tf_thread_env(tf_threads))
    found = model_fingerprint(model, models_dir)
    if found != fingerprint:
        raise ArtifactError(f"model {model!r} here has fingerprint {found[:12]}, the batch expects "
                            f"{fingerprint[:12]} (a different artifact or manifest entry)")
    return Analyzer(model, crop_margin=crop_margin, upsample=upsample, models_dir=models_dir, align=align,
                    rescue_threshold=rescue_threshold)


def worker_analyzer(settings: Settings):
    """The Analyzer of this process for ``settings`` (loaded on first use, then reused by every task: on
    Dask each worker process keeps its own)."""
    return _cached_analyzer(settings.model, settings.model_fingerprint, settings.models_dir, settings.crop_margin,
                            settings.upsample, settings.tf_threads, settings.align, settings.rescue_threshold)


def warm_up(settings: Settings) -> str:
    """Load the model in this process and run it once on a blank 48x48 crop (so that one-time graph
    building is not charged to the first input); on Dask it runs once as a task on every worker."""
    import numpy as np

    analyzer = worker_analyzer(settings)
    analyzer.predictor.predict_proba(np.full((1, 48, 48), 128, np.uint8))
    return analyzer.name


# ---------------------------------------------------------------------------------------------
# One input -> output files (bytes) + its index row; runs in a worker or in-process
# ---------------------------------------------------------------------------------------------
def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def analyze_job(job: Job, settings: Settings, key: str, content: str,
                on_frame: Callable[[int], object] | None = None) -> dict:
    """Analyse one input. Returns {"order", "status": "done"|"error", "error", "files": {name: bytes},
    "meta": dict}; never raises for a bad input (the error is the result)."""
    t0 = time.perf_counter()
    try:
        analyzer = worker_analyzer(settings)
        run = analyze_video if job.kind == "video" else analyze_photos
        files, meta = run(job, settings, analyzer, on_frame or (lambda n: None))
    except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
        return {"order": job.order, "status": "error", "error": one_line(e), "files": {}, "meta": {}}
    meta.update({"schema": OUTPUT_SCHEMA, "input": job.input, "kind": job.kind, "key": key,
                 "content_sha256": content, "model": analyzer.name, "model_fingerprint": settings.model_fingerprint,
                 "settings": settings.result_key(job.kind), "outputs": sorted(files),
                 "seconds": round(time.perf_counter() - t0, 3)})
    return {"order": job.order, "status": "done", "error": None, "files": files, "meta": meta}


def analyze_video(job: Job, settings: Settings, analyzer, on_frame) -> tuple[dict, dict]:
    from ..inference.table import to_dataframe
    from .summary import counts, video_summary
    from .tables import table_bytes
    from .timeline import timeline_png

    va = analyzer.analyze_video(job.path, detect_every=settings.detect_every, smoothing=settings.smoothing,
                                detect_width=settings.detect_width, upsample=settings.upsample or 0,
                                max_frames=settings.max_frames, pipeline=settings.pipeline)
    frames = []
    for fr in va:
        frames.append(fr)
        on_frame(1)
    df = to_dataframe(frames, source=job.input, model=analyzer.name, classes=analyzer.classes)
    meta = counts(df)
    title = f"{job.input} - {analyzer.name}, {meta['frames']} frames"
    files = {f"table.{settings.fmt}": table_bytes(df, settings.fmt),
             f"summary.{settings.fmt}": table_bytes(video_summary(df, analyzer.classes), settings.fmt),
             "timeline.png": timeline_png(df, title, analyzer.classes)}
    meta.update({"fps": va.fps, "skipped_files": []})
    return files, meta


def analyze_photos(job: Job, settings: Settings, analyzer, on_frame) -> tuple[dict, dict]:
    import numpy as np

    from ..inference import FrameFaces
    from ..inference.table import to_dataframe
    from ..video import SourceError, open_source
    from .summary import MAX_SHEET_FACES, caption, contact_sheet, counts, face_thumbnail, photo_summary, png_bytes
    from .tables import table_bytes

    folder = Path(job.path).is_dir()
    shown = (lambda p: str(Path(job.input) / Path(p).name)) if folder else (lambda p: job.input)
    frames, thumbs, total_faces = [], [], 0
    with open_source(job.path) as src:
        for frame in src:
            faces = analyzer.analyze(frame.image)
            frames.append(FrameFaces(frame.index, float("nan"), faces, shown(frame.path)))
            for f in faces:
                total_faces += 1
                if len(thumbs) < MAX_SHEET_FACES:
                    p = float(np.max(f.proba)) if f.answered else None
                    thumbs.append((face_thumbnail(frame.image, f.box), caption(f.label, p, Path(frame.path).name)))
            on_frame(1)
        skipped = [shown(p) for p in getattr(src, "skipped_files", [])]
    if not frames:
        raise SourceError(f"no decodable image in {job.input} ({len(skipped)} file(s) skipped)")
    df = to_dataframe(frames, source=job.input, model=analyzer.name, classes=analyzer.classes)
    more = f" (first {len(thumbs)} of {total_faces} faces)" if total_faces > len(thumbs) else ""
    sheet = contact_sheet(thumbs, f"{job.input} - {analyzer.name}{more}")
    files = {f"table.{settings.fmt}": table_bytes(df, settings.fmt),
             f"summary.{settings.fmt}": table_bytes(photo_summary(df, analyzer.classes), settings.fmt),
             "contact_sheet.png": png_bytes(sheet)}
    meta = counts(df)
    meta.update({"skipped_files": skipped})
    return files, meta


# ---------------------------------------------------------------------------------------------
# The batch
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class BatchResult:
    """``index`` (DataFrame, the rows of index.csv), ``index_path``, status counts, ``frames`` analysed in
    this run (cached inputs excluded), ``workers`` used, and ``timings`` in seconds: ``plan`` (expanding
    and hashing inputs), ``setup`` (cluster start and model loading), ``process`` (analysing and writing
    outputs), ``total``."""

    index: object
    index_path: Path
    done: int
    cached: int
    errors: int
    frames: int
    workers: int
    timings: dict

    @property
    def failed(self) -> list[str]:
        df = self.index
        return df.loc[df["status"] == "error", "input"].tolist()


def index_row(job: Job, status: str, meta: dict | None = None, error: str | None = None,
              content: str | None = None, model: str | None = None) -> dict:
    meta = meta or {}
    return {"input": job.input, "kind": job.kind or None, "output": job.output or None, "status": status,
            "error": error, "frames": meta.get("frames"), "faces": meta.get("faces"), "tracks": meta.get("tracks"),
            "frames_without_face": meta.get("frames_without_face"),
            "skipped_files": ";".join(meta.get("skipped_files", [])) or None,
            "model": meta.get("model", model), "content_sha256": content or meta.get("content_sha256")}


def index_frame(rows: Sequence[dict]):
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=INDEX_COLUMNS)
    return df.astype({"frames": "Int64", "faces": "Int64", "tracks": "Int64", "frames_without_face": "Int64",
                      **{c: "string" for c in ("input", "kind", "output", "status", "error", "skipped_files",
                                               "model", "content_sha256")}})


def write_outputs(out: Path, job: Job, result: dict) -> None:
    """The result's files, then meta.json (the resume marker), each atomically."""
    folder = out / job.output
    for name, data in sorted(result["files"].items()):
        _atomic.write_bytes(folder / name, data)
    _atomic.write_text(folder / META, json.dumps(result["meta"], indent=2, allow_nan=False) + "\n")


def run_batch(inputs: Sequence[str | os.PathLike], out: str | os.PathLike, settings: Settings, *,
              workers: int = 1, scheduler: str | None = None, force: bool = False, progress: bool = True,
              log: Callable[[str], object] | None = None) -> BatchResult:
    """Analyse ``inputs`` into ``out`` (see the module docstring) and write ``out/index.csv``.

    ``workers`` processes on a local Dask cluster (1: this process, no Dask), or ``scheduler`` (address
    of a running Dask scheduler). ``force`` re-runs inputs whose outputs are up to date. ``log`` gets one
    line per failed input (default: printed through tqdm to stderr). Errors of single inputs are in the
    result (never raised); setting up the cluster or loading the model may raise.
    """
    from tqdm import tqdm

    from .tables import write_table

    t_start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    log = log or (lambda line: tqdm.write(line, file=sys.stderr))
    jobs = expand_inputs(inputs)
    rows: dict[int, dict] = {}
    todo: list[tuple[Job, str, str]] = []  # (job, key, content sha256)
    for job in jobs:
        if job.error:
            rows[job.order] = index_row(job, "error", error=job.error)
            continue
        try:
            content = content_sha256(job)
        except OSError as e:
            rows[job.order] = index_row(job, "error", error=one_line(e))
            continue
        key = run_key(job, content, settings)
        meta = None if force else cached_meta(out, job, key)
        if meta is not None:
            rows[job.order] = index_row(job, "cached", meta)
        else:
            todo.append((job, key, content))
    for order, row in rows.items():
        if row["status"] == "error":
            log(f"error: {row['input']}: {row['error']}")
    t_plan = time.perf_counter()

    bars: list = []
    analysed_frames = 0

    def open_bars() -> None:  # after setup, so that the rates are analysis rates
        bars.append(tqdm(total=len(jobs), initial=len(rows), unit="file", desc="files", disable=not progress,
                         position=0, dynamic_ncols=True))
        bars.append(tqdm(unit="frame", desc="frames", disable=not progress, position=1, dynamic_ncols=True))

    def finish(job: Job, content: str, result: dict) -> None:
        nonlocal analysed_frames
        if result["status"] == "done":
            try:
                write_outputs(out, job, result)
            except OSError as e:
                result = dict(result, status="error", error=f"cannot write outputs: {one_line(e)}")
        if result["status"] == "done":
            rows[job.order] = index_row(job, "done", result["meta"])
            analysed_frames += int(result["meta"].get("frames", 0))
            if result["meta"].get("skipped_files"):
                log(f"warning: {job.input}: skipped {len(result['meta']['skipped_files'])} undecodable file(s): "
                    + ", ".join(result["meta"]["skipped_files"]))
        else:
            rows[job.order] = index_row(job, "error", error=result["error"], content=content, model=settings.model)
            log(f"error: {job.input}: {result['error']}")
        bars[0].update(1)

    n_workers = 0
    timings = {"plan": round(t_plan - t_start, 3), "setup": 0.0}
    t_proc = time.perf_counter()
    try:
        if todo and scheduler is None and workers <= 1:
            n_workers = 1
            warm_up(settings)  # model errors surface here, before any input runs
            timings["setup"] = round(time.perf_counter() - t_plan, 3)
            open_bars()
            t_proc = time.perf_counter()
            for job, key, content in todo:
                finish(job, content, analyze_job(job, settings, key, content, on_frame=bars[1].update))
        elif todo:
            with dask_client(settings, workers, scheduler, len(todo)) as (client, n_workers):
                timings["setup"] = round(time.perf_counter() - t_plan, 3)
                open_bars()
                t_proc = time.perf_counter()
                for job, content, result in run_on_dask(client, todo, settings):
                    bars[1].update(int(result["meta"].get("frames", 0)) if result["status"] == "done" else 0)
                    finish(job, content, result)
        else:
            open_bars()
        timings["process"] = round(time.perf_counter() - t_proc, 3)
    finally:
        for bar in bars:
            bar.close()
        for job in jobs:  # interrupted, or the cluster / model failed: what did not run is listed as such
            rows.setdefault(job.order, index_row(job, "not run", error="the batch stopped before this input"))
        index = index_frame([rows[j.order] for j in jobs])
        index_path = write_table(index, out / INDEX, "csv")
    status = index["status"].value_counts()
    timings["total"] = round(time.perf_counter() - t_start, 3)
    return BatchResult(index, index_path, int(status.get("done", 0)), int(status.get("cached", 0)),
                       int(status.get("error", 0)), analysed_frames, n_workers, timings)


@contextlib.contextmanager
def dask_client(settings: Settings, workers: int, scheduler: str | None, jobs: int):
    """``(client, n_workers)`` on a new LocalCluster of ``min(workers, jobs)`` single-threaded processes
    (closed on exit) or on the scheduler at ``scheduler``; the model is loaded on every worker first."""
    import logging

    from dask.distributed import Client, LocalCluster, wait

    env = tf_thread_env(settings.tf_threads)
    os.environ.update(env)  # spawned local workers inherit it; the Nanny sets it as well
    cluster = None
    try:
        if scheduler:
            client = Client(scheduler, timeout="20s")
        else:
            n = min(workers, jobs)
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR, env=env)
            client = Client(cluster)
            client.wait_for_workers(n, timeout=WORKER_START_TIMEOUT)
        with client:
            addresses = sorted(client.scheduler_info()["workers"])
            if not addresses:
                raise ConnectionError(f"the Dask cluster at {scheduler} has no workers")
            # every worker loads the model once, up front, as a task (client.run would block the worker's
            # event loop for the whole load, long enough on a busy machine for its connections to time out)
            loads = [client.submit(warm_up, settings, workers=[a], allow_other_workers=False, pure=False)
                     for a in addresses]
            wait(loads, timeout=MODEL_LOAD_TIMEOUT)
            client.gather(loads)
            yield client, len(addresses)
    finally:
        if cluster is not None:
            cluster.close()


def run_on_dask(client, todo: list[tuple[Job, str, str]], settings: Settings):
    """``(job, content, result)`` for each job as it finishes on the cluster (completion order)."""
    from dask.distributed import as_completed

    futures = {client.submit(analyze_job, job, settings, key, content, pure=False): (job, content)
               for job, key, content in todo}
    for fut in as_completed(futures):
        job, content = futures[fut]
        try:
            result = fut.result()
        except Exception as e:  # noqa: BLE001 - e.g. a worker died on this input
            result = {"order": job.order, "status": "error", "error": f"worker failed: {one_line(e)}",
                      "files": {}, "meta": {}}
        fut.release()
        yield job, content, result
