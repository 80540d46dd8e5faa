"""FER+ cross-check: every report's model scored on the test split against the FER+ majority label.

For each ``report.json`` under the reports folder whose model can be loaded, the model predicts the
FER2013-5 test split (PrivateTest, images whose FER2013 label is one of the 5 study classes) and is scored
against the FER+ crowd majority (fer_hybrid.ferplus: single votes dropped, > 50 % of the rest; images whose
majority is neutral/disgust/contempt/unknown/not-a-face, without a majority, or without a FER+ row are
excluded and counted). The result goes INTO that report as ``metrics.test_ferplus`` = {accuracy, macro_f1,
n, excluded, ...}; every other key is kept and the Markdown twin is rewritten.

How a report's model is found (its recorded sha256 must match, else it is skipped as "changed"):
- kind "peer": the file named in ``artifact.path`` under ../shared/models/peers (fer_hybrid.peers.PeerXception);
- ``artifact.path`` (relative to the repo): ``.keras`` -> the CNN (flip TTA if the report says ``tta``);
  ``.json`` -> a landmark ensemble (member reports ``landmarks-<member>`` use that member alone), a hybrid
  descriptor or a CNN-ensemble descriptor;
- otherwise a registered model of the same name (fer_hybrid.predictors.load_predictor).
Reports without a loadable model keep any ``test_ferplus`` they already have.
Landmarks come from the cached dataset extraction: for a landmark ensemble the method its descriptor records
(``landmark_method``), for a hybrid its landmark predictor's method (what it does at inference).

    python experiments/ferplus_crosscheck.py [--reports experiments/reports] [--data PATH] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
DEFAULT_PEERS = ROOT.parent / "shared" / "models" / "peers"


class Skip(Exception):
    """This report's model cannot be scored (the message says why)."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", default=str(REPORTS), help="folder searched for report.json files")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--models", default=None, help="models folder (default fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--peers", default=str(DEFAULT_PEERS), help="folder holding the peer .hdf5 files")
    ap.add_argument("--ferplus-dir", default=None, help="folder with fer2013new.csv + map (default $FERPLUS_DIR "
                                                        "or ../shared/data/ferplus)")
    ap.add_argument("--only", nargs="*", default=None, help="report names to process (default: all)")
    return ap.parse_args(argv)


class TestInputs:
    """The test split plus its landmarks per method (from the cached dataset extraction, computed once)."""

    def __init__(self, source, data):
        self.source, self.data = source, data
        self._points: dict[str, np.ndarray] = {}

    def points(self, method: str = "fixed") -> np.ndarray:
        if method not in self._points:
            from fer_hybrid.landmarks.extract import extract_fer2013

            self._points[method] = extract_fer2013(self.source, method).points_for(self.data.test.keys)
        return self._points[method]


def _check_sha(path: Path, report: dict) -> None:
    from fer_hybrid.evaluate import file_sha256

    sha = (report.get("artifact") or {}).get("sha256")
    if sha and file_sha256(path) != sha:
        raise Skip(f"{path} changed since the report was written (sha256 differs)")


def load_model(report: dict, models_root: Path, peers: Path):
    """A predictor for the report's model; Skip with the reason when none can be loaded."""
    from fer_hybrid.predictors import list_models, load_predictor, model_spec

    art = report.get("artifact") or {}
    rel = art.get("path")
    if report["kind"] == "peer":
        if not rel or not peers.exists():
            raise Skip(f"peer models folder {peers} not present")
        hits = sorted(peers.rglob(Path(rel).name))
        if not hits:
            raise Skip(f"peer file {rel} not found under {peers}")
        _check_sha(hits[0], report)
        from fer_hybrid.peers import PeerXception

        return PeerXception(hits[0], name=report["name"])
    path = ROOT / rel if rel else None
    if path is not None and path.exists():
        _check_sha(path, report)
        if path.suffix == ".keras":
            from fer_hybrid.artifacts import report_tta
            from fer_hybrid.hybrid import CNNEnsemblePredictor
            from fer_hybrid.predictors import load_keras_predictor

            if report.get("evaluated_as_run"):  # TTA inside the graph: the network exactly as shipped
                return load_keras_predictor(path, report["name"])
            # the TTA policy the report records outside the network (none when it is in the graph, flip, or a
            # multi-view policy from experiments/cnn_tta.py)
            return CNNEnsemblePredictor.from_files([path], tta=report_tta(report), name=report["name"])
        if path.suffix == ".onnx":
            from fer_hybrid.onnx_model import OnnxPredictor

            return OnnxPredictor(path, report["name"])
        if path.suffix == ".json":
            return _load_descriptor(path, report)
    if report["name"] in list_models() and (models_root / model_spec(report["name"]).artifact).exists():
        shipped = models_root / model_spec(report["name"]).artifact
        _check_sha(shipped, report)
        return load_predictor(report["name"], root=models_root)
    raise Skip("no loadable model (artifact " + (f"{rel} missing" if rel else "not recorded") + ")")


def _load_descriptor(path: Path, report: dict):
    fmt = json.loads(path.read_text()).get("format")
    if fmt == "fer_hybrid.hybrid":
        from fer_hybrid.hybrid import load_hybrid_predictor

        return load_hybrid_predictor(path, report["name"])
    if fmt == "fer_hybrid.cnn_ensemble":
        from fer_hybrid.hybrid import load_cnn_ensemble_predictor

        return load_cnn_ensemble_predictor(path, report["name"])
    if fmt == "fer_hybrid.landmark_ensemble":
        from fer_hybrid.landmarks.models import LandmarkEnsemble
        from fer_hybrid.landmarks.predictor import LandmarkPredictor, load_landmark_predictor

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
    raise Skip(f"{path}: unknown descriptor format {fmt!r}")


def predict_test(model, inputs: TestInputs, batch: int = 512) -> np.ndarray:
    """float (n_test, 5) probabilities of the test split (NaN rows = abstained)."""
    from fer_hybrid.hybrid import HybridPredictor

    x = inputs.data.test.x
    if hasattr(model, "predict_proba_points"):  # a landmark predictor: its own landmark method and features
        return model.predict_proba_points(x, inputs.points(model.ensemble.landmark_method))
    if isinstance(model, HybridPredictor):  # the landmark method its landmark predictor runs at inference
        cnn_p, emb = model.cnn.predict(x)
        pts = inputs.points(model.landmarks.method)
        return model.fuse(cnn_p, emb, model.landmarks.predict_proba_points(x, pts), pts)
    return np.concatenate([model.predict_proba(x[i:i + batch]) for i in range(0, len(x), batch)])


def run(args: argparse.Namespace) -> int:
    from fer_hybrid import artifacts, ferplus
    from fer_hybrid.data import load_fer2013, resolve_source
    from fer_hybrid.predictors import ArtifactError
    from fer_hybrid.reports import ReportError, find_reports, read_report, write_report

    if args.ferplus_dir:
        os.environ["FERPLUS_DIR"] = args.ferplus_dir
    if not ferplus.available():
        print(f"FER+ files not found in {ferplus.ferplus_dir()}; nothing to cross-check (no report changed)")
        return 0
    labels = ferplus.ferplus_majority_labels()
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    inputs = TestInputs(source, load_fer2013(source))
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    done = kept = skipped = 0
    for path in find_reports(args.reports):
        try:
            report = read_report(path)
        except ReportError as e:
            print(f"skip {path}: {e}")
            skipped += 1
            continue
        if args.only and report["name"] not in args.only:
            continue
        if report.get("data", {}) and report["data"].get("sha256") not in (None, inputs.data.sha256):
            print(f"skip {report['name']}: measured on other data ({report['data'].get('source')})")
            skipped += 1
            continue
        try:
            model = load_model(report, models_root, Path(args.peers))
            proba = predict_test(model, inputs)
        except (Skip, ArtifactError, FileNotFoundError) as e:
            had = "test_ferplus" in report["metrics"]
            print(f"{'keep' if had else 'skip'} {report['name']}: {e}")
            kept, skipped = kept + had, skipped + (not had)
            continue
        m = ferplus.summary(ferplus.ferplus_metrics(proba, inputs.data.test, labels))
        report["metrics"]["test_ferplus"] = m
        write_report(report, path.parent)
        done += 1
        print(f"{report['name']:36s} FER2013 test {report['metrics']['test']['accuracy']:.4f}  "
              f"FER+ test {m['accuracy']:.4f} (n={m['n']}, excluded {m['excluded']['total']})")
    print(f"{done} report(s) updated, {kept} kept their earlier FER+ numbers, {skipped} skipped")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
