"""The parts the hybrid experiment (``experiments/hybrid.py``) fuses, computed once and cached, and its variants.

Files: :func:`cnn_file` (a CNN name -> its ``.keras``), :func:`landmark_file`, :func:`onnx_twin` (the registered
ONNX export of a CNN, when its report found it equal to Keras). A missing model raises ArtifactMissingError (a
FileNotFoundError) naming the command that makes it.

Parts, cached as ``.npz`` in :func:`fer_hybrid.data.cache_dir` keyed by the model file's and the data's sha256
(:func:`fer_hybrid.npz_cache.cached_arrays`):

- :func:`cnn_parts` ``{f"{split}_p@{policy}": float64 (n, k), f"{split}_e@{policy}": float32 (n, d)}``: a CNN's
  softmax and penultimate embedding averaged over the views of each TTA policy
  (:meth:`fer_hybrid.hybrid.CNNEnsemblePredictor.predict_policies`: every distinct view predicted once);
- :func:`landmark_parts` ``{f"{split}_p": (n, k), f"{split}_f": (n, f)}``: the landmark model's probabilities as
  its predictor computes them and its geometric features, from dlib's points found by the model's own method
  (NaN rows: no landmarks).

Choices on val: :func:`combine_cnns` (the weighted average of CNN parts under one policy), :func:`choose_cnn`
(the policy, and members and weights by greedy ensemble selection), :func:`fit_variants` (every fusion of
:func:`fer_hybrid.fusion.fit_all` on those parts, as :class:`Variant` s), :func:`choose_variant`;
:func:`ship_hybrid` writes the chosen variant to the models folder and records it in the manifest.

>>> parts = {n: cnn_parts(f, data, ["none", "flip"]) for n, f in files.items()}
>>> tta, weights = choose_cnn(parts, list(files), ["none", "flip"], data.val.y)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import artifacts
from . import fusion as fz
from .fusion import accuracy
from .data import cache_dir
from .errors import ArtifactMissingError
from .hybrid import CNNEnsemblePredictor, HybridPredictor, landmark_features
from .npz_cache import cached_arrays
from .safe_io import file_sha256

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def cnn_file(name: str, models_root: Path, checkpoints: Path, train_command: str) -> Path:
    """The ``.keras`` file of a CNN: ``name`` itself when it ends in ``.keras``, else ``models_root/NAME.keras``,
    else ``checkpoints/NAME/final.keras`` (trained, not shipped); ArtifactMissingError naming ``train_command``."""
    if name.endswith(".keras"):
        if Path(name).exists():
            return Path(name)
        raise ArtifactMissingError(f"CNN file {name} not found")
    for p in (Path(models_root) / f"{name}.keras", Path(checkpoints) / name / "final.keras"):
        if p.exists():
            return p
    raise ArtifactMissingError(f"CNN {name!r} is not trained yet (no {Path(models_root) / (name + '.keras')}); "
                               f"train it with `{train_command}`")


def landmark_file(models_root: Path) -> Path:
    """``models_root/landmarks/ensemble.json``; ArtifactMissingError naming the training command when absent."""
    p = Path(models_root) / "landmarks" / "ensemble.json"
    if not p.exists():
        raise ArtifactMissingError(f"the landmark ensemble is not trained yet (no {p}); train it with "
                                   "`python experiments/landmarks.py`")
    return p


def onnx_twin(onnx_name: str | None, cnn: str, members: Sequence[str], models_root: Path,
              repo_root: Path) -> Path | None:
    """The file of the registered model ``onnx_name`` (None when not given) if it is the ONNX export of ``cnn``,
    the single CNN in ``members``, and its report (path relative to ``repo_root``) found it to agree with Keras;
    ArtifactMissingError naming the export command otherwise."""
    if not onnx_name:
        return None
    entry = artifacts.read_manifest(models_root)["models"].get(onnx_name)
    report = json.loads((Path(repo_root) / entry["report"]).read_text()) if entry and entry.get("report") else {}
    if list(members) != [cnn] or report.get("exported_from") != cnn or not report.get("onnx", {}).get("agrees"):
        raise ArtifactMissingError(f"--cnn-onnx {onnx_name} is not an agreeing ONNX export of {cnn} "
                                   f"(make it with `python experiments/export_onnx.py --model {cnn} --ship`)")
    return Path(models_root) / entry["file"]


# ---------------------------------------------------------------------------------------------
# Parts (cached)
# ---------------------------------------------------------------------------------------------
def cnn_parts(path: Path, data, policies: Sequence[str], progress: bool = True,
              splits: Sequence[str] = SPLITS) -> dict[str, np.ndarray]:
    """{f"{split}_p@{policy}": float64 (n, k), f"{split}_e@{policy}": float32 (n, d)}: the CNN ``path``'s softmax
    and embedding of every image of ``data``'s ``splits`` (default train, val, test) averaged over the views of
    each TTA policy, every distinct view predicted once; cached by the file's and the data's sha256, the list of
    policies and (when not all three) the splits."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError(f"splits must be among {list(SPLITS)}, got {list(splits)}")

    def compute():
        cnn = CNNEnsemblePredictor.from_files([path], batch_size=1024)
        out = {}
        for s in splits:
            for policy, (p, e) in cnn.predict_policies(data.split(s).x, policies, progress).items():
                out[f"{s}_p@{policy}"], out[f"{s}_e@{policy}"] = p, e
        return out

    key = hashlib.sha256(",".join(policies).encode()).hexdigest()[:8]
    only = "" if tuple(splits) == SPLITS else "-" + "+".join(splits)
    return cached_arrays(cache_dir() / f"hybrid-cnn-{file_sha256(path)[:20]}-{data.sha256[:12]}-tta{key}{only}.npz",
                         compute)


def landmark_parts(lm_json: Path, source, data, n_jobs: int = 2) -> tuple[object, dict[str, np.ndarray]]:
    """(landmark predictor, {f"{split}_p": (n, k) probabilities, f"{split}_f": float32 (n, f) features}) of the
    landmark model ``lm_json`` on ``data`` (loaded from ``source``): the probabilities exactly as its predictor
    computes them (geometry + appearance at the landmarks, mirror TTA) and the geometric features feature fusion
    uses (:func:`fer_hybrid.hybrid.landmark_features`), from dlib's points found by the model's own method
    (extraction cached); NaN rows where no landmarks were found. Cached by the model's and the data's sha256."""
    from .landmarks.extract import extract_fer2013
    from .landmarks.predictor import load_landmark_predictor

    lm = load_landmark_predictor(lm_json)

    def compute():
        ext = extract_fer2013(source, lm.method, n_jobs=n_jobs)
        out = {}
        for s in SPLITS:
            pts = ext.points_for(data.split(s).keys)
            out[f"{s}_p"] = lm.predict_proba_points(data.split(s).x, pts)
            out[f"{s}_f"] = landmark_features(lm, pts).astype(np.float32)
        return out

    return lm, cached_arrays(cache_dir() / f"hybrid-lm-{file_sha256(lm_json)[:20]}-{data.sha256[:12]}.npz", compute)


# ---------------------------------------------------------------------------------------------
# Choices on val
# ---------------------------------------------------------------------------------------------
def combine_cnns(parts: Sequence[Mapping[str, np.ndarray]], tta: str,
                 weights: Sequence[float] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (float64 (n, k) weighted average of the CNNs' probabilities, float64 (n, sum d) their concatenated
    embeddings)} of :func:`cnn_parts` outputs under TTA policy ``tta`` (``weights`` default equal), for every
    split the parts hold."""
    splits = [s for s in SPLITS if all(f"{s}_p@{tta}" in q for q in parts)]
    return {s: (np.average([q[f"{s}_p@{tta}"] for q in parts], axis=0, weights=weights),
                np.concatenate([q[f"{s}_e@{tta}"] for q in parts], axis=1).astype(np.float64)) for s in splits}


def choose_cnn(parts: Mapping[str, Mapping[str, np.ndarray]], members: Sequence[str], policies: Sequence[str],
               y_val: np.ndarray) -> tuple[str, dict[str, float]]:
    """(TTA policy, {member: weight > 0}) with the best val accuracy: under each policy, the members and weights
    greedy ensemble selection keeps on val (:func:`fer_hybrid.fusion.ensemble_selection`; a single CNN: weight 1);
    the first policy wins ties. ``parts``: {member: :func:`cnn_parts` output}."""
    best = None
    for tta in policies:
        w = fz.ensemble_selection([parts[m][f"val_p@{tta}"] for m in members], y_val)
        chosen = {m: float(x) for m, x in zip(members, w) if x > 0}
        acc = accuracy(combine_cnns([parts[m] for m in chosen], tta, list(chosen.values()))["val"][0], y_val)
        if best is None or acc > best[0]:
            best = (acc, tta, chosen)
    if best is None:
        raise ValueError("choose_cnn needs at least one TTA policy")
    return best[1], best[2]


def fusion_inputs(cnn: Mapping[str, tuple], lm: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """{split: the inputs every fuser reads} from :func:`combine_cnns` and :func:`landmark_parts` outputs."""
    return {s: {"cnn_proba": cnn[s][0], "cnn_embedding": cnn[s][1], "lm_proba": lm[f"{s}_p"],
                "lm_features": lm[f"{s}_f"].astype(np.float64)} for s in cnn}


@dataclasses.dataclass
class Variant:
    """One fitted fusion: ``name`` (e.g. ``hybrid-late``), the fitted ``fuser``, its CNN part (``weights``
    {member: weight}, ``tta``, ``cnn`` {split: (proba, embedding)}) and ``inputs`` {split: fuser inputs}."""

    name: str
    fuser: object
    weights: dict[str, float]
    tta: str
    cnn: dict
    inputs: dict

    @property
    def members(self) -> list[str]:
        return list(self.weights)

    @property
    def val_accuracy(self) -> float:
        """The fuser's own val estimate (``fuser.selection_note`` says which)."""
        return self.fuser.val_accuracy_

    @property
    def needs_embedding(self) -> bool:
        return "cnn_embedding" in self.fuser.inputs

    def proba(self) -> dict[str, np.ndarray]:
        """{split: float32 (n, k) fused probabilities}, rows without landmarks answered by the CNN part."""
        return {s: fz.with_fallback(self.fuser.predict_proba(X), X["cnn_proba"])[0] for s, X in self.inputs.items()}

    def cnn_accuracy(self, labels: Mapping[str, np.ndarray]) -> dict[str, float]:
        """{split: accuracy of the CNN part alone} for the splits of ``labels`` {split: y}."""
        return {s: accuracy(self.cnn[s][0], y) for s, y in labels.items()}

    def fallback(self) -> dict[str, int]:
        """{split: rows whose landmark probabilities or features are missing (answered by the CNN part)}."""
        return {s: int((~np.isfinite(X["lm_features"]).all(1) | ~np.isfinite(X["lm_proba"]).all(1)).sum())
                for s, X in self.inputs.items()}

    def describe(self) -> str:
        return f"{'+'.join(self.weights)} (weights {np.round(list(self.weights.values()), 3).tolist()}, TTA {self.tta})"

    def predictor(self, files: Mapping[str, Path], landmarks, landmark_json: Path,
                  cnn_onnx: Path | None = None) -> HybridPredictor:
        """The :class:`HybridPredictor` of this variant (``files`` {member: .keras path})."""
        cnn = CNNEnsemblePredictor.from_files([files[m] for m in self.members], tta=self.tta,
                                              weights=list(self.weights.values()))
        return HybridPredictor(cnn, landmarks, self.fuser, landmark_model=landmark_json, cnn_onnx=cnn_onnx)


def fit_variants(prefix: str, weights: Mapping[str, float], tta: str, cnn: Mapping[str, tuple],
                 lm: Mapping[str, np.ndarray], y_train: np.ndarray, y_val: np.ndarray,
                 heads: Sequence[str] = ("logreg", "hgb"), n_jobs: int = 2, progress: bool = False) -> list[Variant]:
    """Every fusion of :func:`fer_hybrid.fusion.fit_all` on the CNN part ``cnn`` (:func:`combine_cnns` of
    ``weights`` under ``tta``) and the landmark part ``lm``, named ``f"{prefix}-{variant}"``."""
    X = fusion_inputs(cnn, lm)
    fusers = fz.fit_all(X["train"], y_train, X["val"], y_val, heads, n_jobs, progress)
    return [Variant(f"{prefix}-{v}", f, dict(weights), tta, dict(cnn), X) for v, f in fusers.items()]


def choose_variant(variants: Sequence[Variant]) -> Variant:
    """The variant whose fuser :func:`fer_hybrid.fusion.choose` keeps (best val accuracy; first wins ties)."""
    best = fz.choose([v.fuser for v in variants])
    return next(v for v in variants if v.fuser is best)


def ship_hybrid(variant: Variant, files: Mapping[str, Path], landmarks, landmark_json: Path, models_root: Path,
                report: dict, report_path: str, command: str, weights: str | None = None,
                cnn_onnx: Path | None = None) -> Path:
    """Write ``variant`` as ``models_root/hybrid/hybrid.json`` (+ its fusion head) and record it in the manifest
    with the metrics of its ``report`` (at ``report_path``, relative to the repository). ArtifactMissingError when
    one of its CNN files is not in ``models_root`` (ship the CNN first)."""
    root = Path(models_root)
    for m in variant.members:
        if Path(files[m]).resolve().parent != root.resolve():
            raise ArtifactMissingError(f"{files[m]} is not in {root}; ship the CNN first (cnn_transfer.py --ship)")
    hp = variant.predictor(files, landmarks, landmark_json, cnn_onnx)
    ship = hp.save(root / "hybrid" / "hybrid.json", models_root=root,
                   extra={"val_accuracy": variant.val_accuracy, "variant": variant.name, "report": report_path})
    head = ship.with_name("hybrid-fusion.skops")
    artifacts.update_manifest("hybrid", ship, root=root, command=command, data=report["data"], weights=weights,
                              metrics=artifacts.manifest_metrics(report["metrics"], SPLITS),
                              report=report_path, extra_files=[str(head)] if head.exists() else None)
    return ship
