"""Score the model behind a report on the test split against the FER+ majority label, into that report.

The method of ``experiments/ferplus_crosscheck.py``. The FER+ rule (:mod:`fer_hybrid.ferplus`): single votes
dropped, > 50 % of the rest; images whose majority is outside the study classes, without a majority, or
without a FER+ row are excluded and counted. The result goes into the report as ``metrics.test_ferplus``
(:func:`fer_hybrid.ferplus.summary`); every other key is kept and the Markdown twin is rewritten.

How a report's model is found (:func:`report_model`; a recorded sha256 must match, else NotScorable "changed"):

- kind "peer": the file named in ``artifact.path`` under the peers folder (:class:`fer_hybrid.peers.PeerXception`);
- ``artifact.path`` (relative to the repository): ``.keras`` -> the CNN (the TTA policy the report records,
  none when it ran inside the graph); ``.onnx`` -> :class:`~fer_hybrid.onnx_model.OnnxPredictor`; ``.json`` ->
  a landmark ensemble (member reports ``landmarks-<member>`` use that member alone), a hybrid descriptor or a
  CNN-ensemble descriptor;
- otherwise a registered model of the same name (:func:`fer_hybrid.predictors.load_predictor`).

Landmarks come from the cached dataset extraction: for a landmark ensemble the method its descriptor records,
for a hybrid its landmark predictor's method (what it does at inference).

>>> inputs = CrosscheckInputs(source, load_fer2013(source))
>>> load = functools.partial(report_model, models_root=models_dir(), peers=peers, repo_root=repo)
>>> crosscheck_report(path, inputs, ferplus_majority_labels(), load)   # Outcome(status, line)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ArtifactError
from ..evaluate import file_sha256
from ..ferplus import FerPlusLabels, ferplus_metrics, summary
from ..reports import ReportError, read_report, write_report
from ..verify import predict_chunked

STATUSES = ("updated", "kept", "skipped", "ignored")


class NotScorable(Exception):
    """This report's model cannot be scored (the message says why)."""


class CrosscheckInputs:
    """The test split plus its landmarks per method (from the cached dataset extraction, computed once).

    ``points``: landmarks already at hand, {method: float (n_test, 68, 2)}."""

    def __init__(self, source: str | os.PathLike, data, points: dict[str, np.ndarray] | None = None):
        self.source, self.data = source, data
        self._points: dict[str, np.ndarray] = dict(points or {})

    def points(self, method: str = "fixed") -> np.ndarray:
        if method not in self._points:
            from ..landmarks.extract import extract_fer2013

            self._points[method] = extract_fer2013(self.source, method).points_for(self.data.test.keys)
        return self._points[method]


def _check_sha(path: Path, report: dict) -> None:
    sha = (report.get("artifact") or {}).get("sha256")
    if sha and file_sha256(path) != sha:
        raise NotScorable(f"{path} changed since the report was written (sha256 differs)")


def report_model(report: dict, models_root: str | os.PathLike, peers: str | os.PathLike,
                 repo_root: str | os.PathLike | None = None):
    """A predictor for the report's model (see the module doc); NotScorable with the reason when none loads.
    ``artifact.path`` is relative to ``repo_root`` (default: the checkout holding ``models/``)."""
    from ..artifacts import checkout_models_dir
    from ..predictors import list_models, load_predictor, model_spec

    models_root, peers = Path(models_root), Path(peers)
    repo_root = Path(repo_root) if repo_root is not None else checkout_models_dir().parent
    rel = (report.get("artifact") or {}).get("path")
    if report["kind"] == "peer":
        if not rel or not peers.exists():
            raise NotScorable(f"peer models folder {peers} not present")
        hits = sorted(peers.rglob(Path(rel).name))
        if not hits:
            raise NotScorable(f"peer file {rel} not found under {peers}")
        _check_sha(hits[0], report)
        from ..peers import PeerXception

        return PeerXception(hits[0], name=report["name"])
    path = repo_root / rel if rel else None
    if path is not None and path.exists():
        _check_sha(path, report)
        if path.suffix == ".keras":
            from ..artifacts import report_tta
            from ..hybrid import CNNEnsemblePredictor
            from ..predictors import load_keras_predictor

            if report.get("evaluated_as_run"):  # TTA inside the graph: the network exactly as shipped
                return load_keras_predictor(path, report["name"])
            # the TTA policy the report records outside the network (none when it is in the graph, flip, or a
            # multi-view policy from experiments/cnn_tta.py)
            return CNNEnsemblePredictor.from_files([path], tta=report_tta(report), name=report["name"])
        if path.suffix == ".onnx":
            from ..onnx_model import OnnxPredictor

            return OnnxPredictor(path, report["name"])
        if path.suffix == ".json":
            return descriptor_model(path, report)
    if report["name"] in list_models() and (models_root / model_spec(report["name"]).artifact).exists():
        _check_sha(models_root / model_spec(report["name"]).artifact, report)
        return load_predictor(report["name"], root=models_root)
    raise NotScorable("no loadable model (artifact " + (f"{rel} missing" if rel else "not recorded") + ")")


def descriptor_model(path: Path, report: dict):
    """The predictor of a ``.json`` descriptor (hybrid, CNN ensemble, landmark ensemble or one of its members)."""
    fmt = json.loads(Path(path).read_text()).get("format")
    if fmt == "fer_hybrid.hybrid":
        from ..hybrid import load_hybrid_predictor

        return load_hybrid_predictor(path, report["name"])
    if fmt == "fer_hybrid.cnn_ensemble":
        from ..hybrid import load_cnn_ensemble_predictor

        return load_cnn_ensemble_predictor(path, report["name"])
    if fmt == "fer_hybrid.landmark_ensemble":
        from ..landmarks.models import LandmarkEnsemble
        from ..landmarks.predictor import LandmarkPredictor, load_landmark_predictor

        # scored on the landmarks the report's own test numbers used (the model's landmark_method), with
        # the features it was trained on (geometry, + appearance at the landmarks when it has it)
        lp = load_landmark_predictor(path, report["name"])
        ens = lp.ensemble
        member = report["name"].split("-")[-1]
        if member in ens.members and report["name"] != "landmarks-ensemble":  # a member's report: it alone
            ens = LandmarkEnsemble({member: ens.members[member]}, {member: 1.0}, ens.features, ens.classes,
                                   ens.tta_mirror, ens.n_jobs, ens.landmark_method)
            lp = LandmarkPredictor(ens, report["name"], lp.box_scale, lp.method, lp.appearance)
        return lp
    raise NotScorable(f"{path}: unknown descriptor format {fmt!r}")


def predict_test(model, inputs: CrosscheckInputs, batch: int = 512) -> np.ndarray:
    """float (n_test, 5) probabilities of the test split (NaN rows = abstained), ``batch`` faces at a time.
    Landmark predictors and hybrids get the cached landmarks of the method they run at inference."""
    from ..hybrid import HybridPredictor

    x = inputs.data.test.x
    if hasattr(model, "predict_proba_points"):  # a landmark predictor: its own landmark method and features
        return model.predict_proba_points(x, inputs.points(model.ensemble.landmark_method))
    if isinstance(model, HybridPredictor):  # the landmark method its landmark predictor runs at inference
        cnn_p, emb = model.cnn.predict(x)
        pts = inputs.points(model.landmarks.method)
        return model.fuse(cnn_p, emb, model.landmarks.predict_proba_points(x, pts), pts)
    return predict_chunked(model.predict_proba, x, batch)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What :func:`crosscheck_report` did: ``status`` in :data:`STATUSES` and a printable ``line`` (None when
    the report was ignored, i.e. not among ``only``)."""

    status: str
    line: str | None


def crosscheck_report(path: str | os.PathLike, inputs: CrosscheckInputs, labels: FerPlusLabels,
                      load_model: Callable[[dict], object], only: Sequence[str] | None = None) -> Outcome:
    """Score the model of the report at ``path`` (``load_model(report)`` -> predictor, or NotScorable /
    ArtifactError / FileNotFoundError) against FER+ and rewrite the report with ``metrics.test_ferplus``.

    "updated": written; "kept": no model, but the report keeps the FER+ numbers it already has; "skipped":
    unreadable report, measured on other data, or no model and no earlier numbers; "ignored": not in ``only``.
    """
    try:
        report = read_report(path)
    except ReportError as e:
        return Outcome("skipped", f"skip {path}: {e}")
    if only and report["name"] not in only:
        return Outcome("ignored", None)
    data = report.get("data") or {}
    if data.get("sha256") not in (None, inputs.data.sha256):
        return Outcome("skipped", f"skip {report['name']}: measured on other data ({data.get('source')})")
    try:
        proba = predict_test(load_model(report), inputs)
    except (NotScorable, ArtifactError, FileNotFoundError) as e:
        had = "test_ferplus" in report["metrics"]
        return Outcome("kept" if had else "skipped", f"{'keep' if had else 'skip'} {report['name']}: {e}")
    m = summary(ferplus_metrics(proba, inputs.data.test, labels))
    report["metrics"]["test_ferplus"] = m
    write_report(report, Path(path).parent)
    return Outcome("updated", f"{report['name']:36s} FER2013 test {report['metrics']['test']['accuracy']:.4f}  "
                              f"FER+ test {m['accuracy']:.4f} (n={m['n']}, excluded {m['excluded']['total']})")
