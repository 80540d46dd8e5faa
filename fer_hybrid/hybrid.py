"""The ``hybrid`` model: a CNN (or an ensemble of CNNs) fused with the landmark ensemble.

Pieces (fusion math lives in :mod:`fer_hybrid.fusion`):

- :class:`CNNEnsemblePredictor`: one or more ``.keras`` CNNs averaged, optionally over the views of a
  test-time augmentation policy (``tta``). ``predict(faces) -> (proba (n, k), embedding (n, d))``; the embedding is each member's
  penultimate activation (:func:`embedding_layer_name`: the layer named ``head_relu`` for ``vggbn``, else
  the layer feeding ``predictions``, else the one before the last layer; inside a network wrapped by
  :func:`fer_hybrid.cnn.export.with_flip_tta`, averaged over its calls), concatenated over members.
  ``predict_policies(faces, policies)`` gives the same under several TTA policies, each distinct view once.
- :class:`HybridPredictor`: the registry predictor. ``predict_proba(faces) -> float32 (n, 5)``; rows
  whose face has no landmarks fall back to the CNN alone and are flagged in ``last_fallback`` (bool (n,)).
  ``predict_frame(frame, boxes)`` / ``predict_proba_frame`` hand the landmarks to the landmark predictor's
  frame API and expose the points (``last_landmarks``, frame pixels) for the realtime overlay.

Saved as a JSON descriptor (``models/hybrid/hybrid.json``) naming the CNN file(s) and the landmark model
*relative to the models folder* with their sha256, the fusion parameters and, for a learned head, a
``.skops`` file beside it (:mod:`fer_hybrid.safe_io`: no pickle). :func:`validate_hybrid_descriptor` and
:func:`validate_ensemble_descriptor` check a descriptor's fields before anything is loaded;
:func:`ship_cnn_ensemble` copies an evaluated ensemble's descriptor into the models folder:

>>> p = load_predictor("hybrid")                    # or load_hybrid_predictor(Path("models/hybrid/hybrid.json"))
>>> p.predict_proba(faces), p.last_fallback
"""
from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _atomic
from . import fusion as fz
from .artifacts import check_relative_file, check_sha
from .crops import to_gray_faces
from .errors import ArtifactError
from .keras_io import load_keras_model
from .labels import STUDY_EMOTIONS
from .safe_io import SKOPS_SUFFIX, file_sha256, load_sklearn, refuse_pickle, save_sklearn

FORMAT = "fer_hybrid.hybrid"
ENSEMBLE_FORMAT = "fer_hybrid.cnn_ensemble"
FORMAT_VERSION = 1
EMBEDDING_LAYER = "head_relu"
SIZE = 48


# ---------------------------------------------------------------------------------------------
# CNN side
# ---------------------------------------------------------------------------------------------
def embedding_layer_name(model, preferred: str = EMBEDDING_LAYER) -> str:
    """Name of the penultimate feature layer: ``preferred`` if present, else the layer feeding
    ``predictions``, else the layer before the output layer. When that layer is itself a network (one wrapped
    in another graph, e.g. by :func:`fer_hybrid.cnn.export.with_flip_tta`), the name is ``"<network>/<its
    embedding layer>"`` (found by these same rules inside it)."""
    import keras

    names = [layer.name for layer in model.layers]
    if preferred in names:
        return preferred
    if "predictions" in names:
        inbound = model.get_layer("predictions")._inbound_nodes[0].input_tensors
        return inbound[0]._keras_history[0].name
    if len(names) < 2:
        raise ValueError(f"model {model.name!r} has no layer before its output")
    if isinstance(model.layers[-2], keras.Model):
        return f"{names[-2]}/{embedding_layer_name(model.layers[-2], preferred)}"
    return names[-2]


def embedding_output(model, layer: str):
    """The symbolic embedding of ``model`` on its own inputs for a name of :func:`embedding_layer_name`: the
    layer's output, or for ``"<network>/<layer>"`` the wrapped network's embedding at every place ``model``
    calls it (with_flip_tta: the face and its mirror), averaged like the network's outputs."""
    import keras

    head, _, rest = layer.partition("/")
    if not rest:
        return model.get_layer(head).output
    inner = model.get_layer(head)
    sub = keras.Model(inner.inputs, embedding_output(inner, rest))
    in_graph = {id(n) for nodes in model._nodes_by_depth.values() for n in nodes}
    calls = [sub(n.input_tensors[0]) for n in inner._inbound_nodes if id(n) in in_graph]
    if not calls:
        raise ValueError(f"model {model.name!r} never calls its layer {head!r}")
    return calls[0] if len(calls) == 1 else keras.layers.Average()(calls)


class _Member:
    """One Keras CNN compiled to a tf.function returning (softmax (n, k), embedding (n, d))."""

    def __init__(self, model, layer: str | None = None):
        import keras
        import tensorflow as tf

        self.model = model
        self.layer = layer or embedding_layer_name(model)
        emb = embedding_output(model, self.layer)
        two = keras.Model(model.inputs, [model.outputs[0], keras.layers.Flatten()(emb) if len(emb.shape) > 2 else emb])
        _, h, w, c = model.input_shape
        self.input_hw = (int(h), int(w))
        self._fn = tf.function(lambda x: two(x, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
        self.embedding_dim = int(two.outputs[1].shape[-1])

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, e = self._fn(x.astype(np.float32))
        return np.asarray(p, np.float64), np.asarray(e, np.float64)


class OnnxCNN:
    """The CNN part of a hybrid run from its ONNX twin (the same network with the descriptor's TTA inside the
    graph, :mod:`fer_hybrid.onnx_model`): probabilities only, no embedding, no TensorFlow.

    ``predict(faces) -> (float64 (n, k) probabilities, None)``, as :meth:`CNNEnsemblePredictor.predict`."""

    def __init__(self, path: str | Path, name: str = "cnn-onnx", tta: str = "none"):
        from .onnx_model import OnnxPredictor

        self.onnx = OnnxPredictor(path, name)
        self.tta = tta  # the policy inside the graph (the descriptor's cnn.tta)
        self.classes = self.onnx.classes
        self.input_hw = self.onnx.input_hw
        self.path = Path(path)

    def predict(self, faces) -> tuple[np.ndarray, None]:
        return np.asarray(self.onnx.predict_proba(faces), np.float64), None

    def predict_proba(self, faces) -> np.ndarray:
        return self.onnx.predict_proba(faces)

    def count_params(self) -> int:
        return 0  # not read from the graph (that needs the onnx package); the Keras twin's report has it


class CNNEnsemblePredictor:
    """Weighted average of CNNs (each: float32 (n, 48, 48, 1) gray 0..255 -> softmax (n, k)), optional TTA.

    ``models``: Keras models; ``files``: their paths (recorded on save); ``tta``: a test-time augmentation
    policy of :mod:`fer_hybrid.cnn.tta` (``"none"``, ``"flip"``, ``"flip-scale"``, ...): probabilities and
    embeddings are averaged over its views; ``embedding_layer``: preferred embedding layer name; ``weights``: (m,) non-negative member weights
    (default equal; normalised to sum 1).
    """

    input_kind = "crops"

    def __init__(self, models: Sequence, name: str = "cnn-ensemble", tta: str = "none",
                 files: Sequence[str | Path] | None = None, embedding_layer: str = EMBEDDING_LAYER,
                 classes: Sequence[str] = STUDY_EMOTIONS, batch_size: int = 256,
                 weights: Sequence[float] | None = None):
        from .cnn.tta import tta_policy

        if not models:
            raise ValueError("a CNN ensemble needs at least one model")
        w = np.ones(len(models)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(models),) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {len(models)} non-negative numbers with a positive sum, got {weights}")
        self.weights = w / w.sum()
        self.members = [_Member(m, embedding_layer if embedding_layer in [l.name for l in m.layers] else None)
                        for m in models]
        self.name = name
        self.tta = tta
        self.views = tta_policy(self.tta)   # ValueError listing the policies for an unknown name
        self.files = [Path(f) for f in files] if files is not None else None
        self.classes = tuple(classes)
        self.batch_size = batch_size
        self.embedding_dim = sum(m.embedding_dim for m in self.members)

    @classmethod
    def from_files(cls, files: Sequence[str | Path], **kwargs) -> "CNNEnsemblePredictor":
        files = [Path(f) for f in files]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise FileNotFoundError(f"CNN model file(s) not found: {', '.join(missing)}")
        return cls([load_keras_model(f) for f in files], files=files, **kwargs)

    def predict(self, faces) -> tuple[np.ndarray, np.ndarray]:
        """(float64 (n, k) averaged probabilities, float64 (n, d) concatenated member embeddings)."""
        from .cnn.tta import tta_views

        x = to_gray_faces(faces, SIZE)
        n = len(x)
        if n == 0:
            return np.zeros((0, len(self.classes))), np.zeros((0, self.embedding_dim))
        sized = {hw: (x if hw == x.shape[1:] else to_gray_faces(x, hw)) for hw in {m.input_hw for m in self.members}}
        probas, embs = [], []
        for s in range(0, n, self.batch_size):
            # float32 (v, m, h, w) views per input size (warps are about the centre: size-independent)
            views = {hw: tta_views(xs[s:s + self.batch_size], self.views) for hw, xs in sized.items()}
            p_sum, e_parts = 0.0, []
            for m, w_m in zip(self.members, self.weights):
                e_sum = 0.0
                for v in views[m.input_hw]:
                    p, e = m(v[..., None])
                    p_sum, e_sum = p_sum + w_m * p, e_sum + e
                e_parts.append(e_sum / len(self.views))
            probas.append(p_sum / len(self.views))
            embs.append(np.concatenate(e_parts, axis=1))
        return np.concatenate(probas), np.concatenate(embs)

    def predict_policies(self, faces, policies: Sequence[str],
                         progress: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{policy: (float64 (n, k) probabilities, float32 (n, d) embeddings)} under each TTA policy of
        :mod:`fer_hybrid.cnn.tta` (not this ensemble's own ``tta``): members weighted and embeddings concatenated
        as in :meth:`predict`, every distinct view of every member predicted once (:func:`policy_proba`,
        ``batch_size`` faces at a time)."""
        from .cnn.tta import policy_proba

        k, n = len(self.classes), len(faces)
        out = {p: (np.zeros((n, k)), []) for p in policies}
        for m, w in zip(self.members, self.weights):
            if n == 0:
                joint = {p: np.zeros((0, k + m.embedding_dim), np.float32) for p in policies}
            else:  # probabilities and embedding side by side: one "probability" row per view for policy_proba
                joint = policy_proba(lambda v, m=m: np.concatenate(m(v[..., None]), axis=1),
                                     to_gray_faces(faces, m.input_hw), policies, self.batch_size, progress)
            for p, both in joint.items():
                out[p][0][:] += w * both[:, :k].astype(np.float64)
                out[p][1].append(both[:, k:])
        return {p: (proba, np.concatenate(embs, axis=1)) for p, (proba, embs) in out.items()}

    def predict_proba(self, faces) -> np.ndarray:
        return self.predict(faces)[0].astype(np.float32)

    def with_tta(self, tta: str) -> "CNNEnsemblePredictor":
        """The same members and weights (shared, not copied) under another TTA policy."""
        from .cnn.tta import tta_policy

        other = copy.copy(self)
        other.tta, other.views = tta, tta_policy(tta)
        return other

    def embed(self, faces) -> np.ndarray:
        return self.predict(faces)[1]

    def count_params(self) -> int:
        return int(sum(m.model.count_params() for m in self.members))

    def config(self, models_root: Path, folder: Path) -> dict:
        if self.files is None:
            raise ValueError("this CNN ensemble was built from in-memory models; build it with from_files to save it")
        return {"files": [_relative(f, models_root) for f in self.files],
                "sha256": [file_sha256(f) for f in self.files], "tta": self.tta,
                "weights": [float(w) for w in self.weights],
                "embedding_layers": [m.layer for m in self.members]}


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (posix) when inside it, else absolute."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_posix()


def _resolve(rel: str, root: Path) -> Path:
    p = Path(rel)
    return p if p.is_absolute() else root / p


def _bad(path, field: str, expected: str, value) -> ArtifactError:
    return ArtifactError(f"{path}: field {field!r} must be {expected}, got {type(value).__name__} {value!r:.60}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def _check_header(desc, path, fmt: str) -> None:
    if not isinstance(desc, dict):
        raise _bad(path, "(top level)", "a JSON object", desc)
    if desc.get("format") != fmt or desc.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: not a {fmt} v{FORMAT_VERSION} descriptor (fields 'format', 'format_version')")
    classes = desc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise _bad(path, "classes", "a non-empty list of class names", classes)
    if "models_root" in desc and not isinstance(desc["models_root"], str):
        raise _bad(path, "models_root", "a relative folder path", desc["models_root"])


def _check_cnn_section(cnn, path) -> None:
    """The "cnn" section: files (non-empty list of paths), sha256 (one per file), tta (a policy name), weights
    (one finite number >= 0 per file, sum > 0; optional), embedding_layers (one name per file; optional)."""
    if not isinstance(cnn, dict):
        raise _bad(path, "cnn", "an object", cnn)
    files = cnn.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) and f for f in files):
        raise _bad(path, "cnn.files", "a non-empty list of file names", files)
    for f in files:
        if Path(f).suffix != ".keras":
            raise _bad(path, "cnn.files", "a list of .keras files", f)
    shas = cnn.get("sha256")
    if not isinstance(shas, list) or len(shas) != len(files):
        raise _bad(path, "cnn.sha256", f"a list of {len(files)} sha256 (one per file)", shas)
    for i, sha in enumerate(shas):
        check_sha(path, f"cnn.sha256[{i}]", sha)
    if not isinstance(cnn.get("tta"), str):
        raise _bad(path, "cnn.tta", "a TTA policy name (\"none\", \"flip\", ...)", cnn.get("tta"))
    if "flip_tta" in cnn:
        raise ArtifactError(f"{path}: field 'cnn.flip_tta' is no longer read (use 'cnn.tta'); re-save the descriptor")
    weights = cnn.get("weights")
    if weights is not None:
        if (not isinstance(weights, list) or len(weights) != len(files)
                or not all(_is_number(w) and w >= 0 for w in weights)):
            raise _bad(path, "cnn.weights", f"a list of {len(files)} finite numbers >= 0", weights)
        if sum(weights) <= 0:
            raise ArtifactError(f"{path}: field 'cnn.weights' sums to {sum(weights)}; it must sum to > 0")
    layers = cnn.get("embedding_layers")
    if layers is not None and (not isinstance(layers, list) or len(layers) != len(files)
                               or not all(isinstance(x, str) for x in layers)):
        raise _bad(path, "cnn.embedding_layers", f"a list of {len(files)} layer names", layers)
    onnx = cnn.get("onnx")
    if onnx is not None:
        if len(files) != 1:
            raise _bad(path, "cnn.onnx", "absent for an ensemble of CNNs (one ONNX twin of a single CNN)", onnx)
        if not isinstance(onnx, dict) or not isinstance(onnx.get("file"), str) or Path(onnx["file"]).suffix != ".onnx":
            raise _bad(path, "cnn.onnx", "an object {file: NAME.onnx, sha256}", onnx)
        check_relative_file(path, "cnn.onnx.file", onnx["file"])
        check_sha(path, "cnn.onnx.sha256", onnx.get("sha256"))


def validate_ensemble_descriptor(desc, path) -> dict:
    """``desc`` (a parsed CNN-ensemble descriptor at ``path``) if well formed, else ArtifactError naming the
    file and the field."""
    _check_header(desc, path, ENSEMBLE_FORMAT)
    _check_cnn_section(desc.get("cnn"), path)
    return desc


def validate_hybrid_descriptor(desc, path) -> dict:
    """``desc`` (a parsed ``hybrid.json`` at ``path``) if well formed, else ArtifactError naming the file and
    the field: header, "cnn" section, "landmarks" {file, sha256}, "fusion" {method, its parameters, and for a
    learned head a ``.skops`` file with its sha256}, "crop_margin" in [0, 2]."""
    _check_header(desc, path, FORMAT)
    _check_cnn_section(desc.get("cnn"), path)
    lm = desc.get("landmarks")
    if not isinstance(lm, dict):
        raise _bad(path, "landmarks", "an object {file, sha256}", lm)
    if not isinstance(lm.get("file"), str) or not lm["file"]:
        raise _bad(path, "landmarks.file", "a file name", lm.get("file"))
    check_sha(path, "landmarks.sha256", lm.get("sha256"))
    fusion = desc.get("fusion")
    if not isinstance(fusion, dict):
        raise _bad(path, "fusion", "an object", fusion)
    if fusion.get("method") not in fz.METHODS:
        raise _bad(path, "fusion.method", f"one of {', '.join(fz.METHODS)}", fusion.get("method"))
    if fusion["method"] == "late":
        w = fusion.get("weight_cnn")
        if not _is_number(w) or not 0 <= w <= 1:
            raise _bad(path, "fusion.weight_cnn", "a number in [0, 1]", w)
    else:
        check_relative_file(path, "fusion.file", fusion.get("file"))
        check_sha(path, "fusion.sha256", fusion.get("sha256"))
    if fusion["method"] == "stacking" and (not _is_number(fusion.get("C")) or fusion["C"] <= 0):
        raise _bad(path, "fusion.C", "a number > 0", fusion.get("C"))
    if fusion["method"] == "feature":
        if fusion.get("head") not in ("logreg", "hgb"):
            raise _bad(path, "fusion.head", "logreg or hgb", fusion.get("head"))
        if not isinstance(fusion.get("params"), dict):
            raise _bad(path, "fusion.params", "an object", fusion.get("params"))
        for key in ("n_features", "n_classes"):
            v = fusion.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise _bad(path, f"fusion.{key}", "a positive integer", v)
    margin = desc.get("crop_margin", 0.1)
    if not _is_number(margin) or not 0 <= margin <= 2:
        raise _bad(path, "crop_margin", "a number in [0, 2]", margin)
    return desc


def _read_descriptor(path: Path, validate) -> dict:
    return validate(_atomic.read_json(path, ArtifactError, "descriptor"), path)


def _models_root(path: Path, desc: dict) -> Path:
    return (Path(path).parent / desc.get("models_root", "..")).resolve()


def _checked(f: Path, sha: str, path: Path, what: str, verify: bool, hint: str) -> Path:
    """``f`` after the checks: not a pickle, present, and (``verify``) its sha256 is the descriptor's."""
    refuse_pickle(f, path)
    if not f.exists():
        raise ArtifactError(f"{path}: {what} {f} is missing; {hint}")
    if verify and file_sha256(f) != sha:
        raise ArtifactError(f"{path}: {what} {f.name} does not match its sha256 in {path.name} (retrained, replaced "
                            f"or damaged); {hint}")
    return f


def _load_cnns(desc_cnn: dict, root: Path, path: Path, name: str, verify: bool = True) -> CNNEnsemblePredictor:
    hint = "re-run the command that made this descriptor"
    files = [_checked(_resolve(f, root), sha, path, "CNN file", verify, hint)
             for f, sha in zip(desc_cnn["files"], desc_cnn["sha256"])]
    layers = desc_cnn.get("embedding_layers") or [EMBEDDING_LAYER] * len(files)
    models = [load_keras_model(f) for f in files]
    try:
        cnn = CNNEnsemblePredictor(models, name=name, tta=desc_cnn["tta"], files=files, weights=desc_cnn.get("weights"))
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from None
    for m, layer in zip(cnn.members, layers):
        if m.layer != layer:
            raise ArtifactError(f"{path}: embedding layer {layer!r} recorded, found {m.layer!r}")
    return cnn


def save_cnn_ensemble(cnn: CNNEnsemblePredictor, path: str | Path, models_root: str | Path | None = None,
                      extra: dict | None = None) -> Path:
    """Write the ensemble's JSON descriptor (CNN files relative to ``models_root``, default: the parent of
    the descriptor's folder). Returns ``path``."""
    path = Path(path)
    root = Path(models_root) if models_root is not None else path.parent.parent
    desc = {"format": ENSEMBLE_FORMAT, "format_version": FORMAT_VERSION, "classes": list(cnn.classes),
            "models_root": os.path.relpath(root.resolve(), path.parent.resolve()),
            "cnn": cnn.config(root, path.parent), **(extra or {})}
    _atomic.write_text(path, json.dumps(desc, indent=2) + "\n")
    return path


def ship_cnn_ensemble(descriptor: str | Path, models_root: str | Path, name: str = "ensemble") -> Path:
    """Copy the CNN-ensemble descriptor ``descriptor`` (:func:`save_cnn_ensemble`, e.g. beside an experiment's
    report) to ``models_root/<name>/ensemble.json``, its CNN files named relative to ``models_root`` and only the
    ``tta`` field (a legacy ``flip_tta`` is dropped). ArtifactError when a member in ``models_root`` is missing or
    not the file (sha256) the ensemble was evaluated with. Returns the written path."""
    src, root = Path(descriptor), Path(models_root)
    desc = _atomic.read_json(src, ArtifactError, "descriptor")
    if isinstance(desc, dict) and isinstance(desc.get("cnn"), dict):
        desc["cnn"].pop("flip_tta", None)
    validate_ensemble_descriptor(desc, src)
    for f, sha in zip(desc["cnn"]["files"], desc["cnn"]["sha256"]):
        _checked(root / f, sha, src, "CNN file", True, "re-run experiments/hybrid.py")
    path = root / name / "ensemble.json"
    desc["models_root"] = os.path.relpath(root.resolve(), path.parent.resolve())
    _atomic.write_text(path, json.dumps(desc, indent=2) + "\n")
    return path


def load_cnn_ensemble_predictor(path: Path, name: str = "cnn-ensemble") -> CNNEnsemblePredictor:
    """Loader (registry signature) for a descriptor written by :func:`save_cnn_ensemble`."""
    path = Path(path)
    desc = _read_descriptor(path, validate_ensemble_descriptor)
    return _load_cnns(desc["cnn"], _models_root(path, desc), path, name)


# ---------------------------------------------------------------------------------------------
# Landmark side
# ---------------------------------------------------------------------------------------------
def landmark_features(landmarks, points: np.ndarray) -> np.ndarray:
    """float64 (n, f) geometric features of points (n, 68, 2) with the landmark model's own transformer."""
    ens = getattr(landmarks, "ensemble", landmarks)
    return np.asarray(ens.features.transform(np.asarray(points, np.float64)), np.float64)


def _landmark_outputs(landmarks, x48: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(float64 (n, k) landmark probabilities, points (n, 68, 2) or None) for 48x48 gray faces."""
    if hasattr(landmarks, "predict"):
        p, pts = landmarks.predict(x48)
        return np.asarray(p, np.float64), np.asarray(pts, np.float64)
    return np.asarray(landmarks.predict_proba(x48), np.float64), None


# ---------------------------------------------------------------------------------------------
# The hybrid predictor
# ---------------------------------------------------------------------------------------------
class HybridPredictor:
    """CNN(s) + landmark ensemble + a fitted fuser (:mod:`fer_hybrid.fusion`).

    ``cnn``: :class:`CNNEnsemblePredictor`; ``landmarks``: a landmark predictor with ``predict(faces) ->
    (proba (n, k), points (n, 68, 2))`` (e.g. :class:`fer_hybrid.landmarks.predictor.LandmarkPredictor`);
    ``fuser``: fitted LateFusion / StackingFusion / FeatureFusion. After each call ``last_fallback`` (bool
    (n,)) marks rows answered by the CNN alone (no landmarks) and ``last_timings`` is {"landmarks": s,
    "classification": s}; the frame API also sets ``last_landmarks`` (float32 (k, 68, 2), frame pixels).
    """

    input_kind = "frame"  # the Analyzer calls predict_frame(frame, boxes): landmarks + CNN crops, one pass

    def __init__(self, cnn: CNNEnsemblePredictor, landmarks, fuser, name: str = "hybrid",
                 crop_margin: float = 0.1, landmark_model: str | Path | None = None,
                 cnn_onnx: str | Path | None = None):
        self.cnn = cnn
        self.cnn_onnx = cnn_onnx  # ONNX twin of a single CNN (TTA in its graph), recorded by save()
        self.landmarks = landmarks
        self.fuser = fuser
        self.name = name
        self.classes = tuple(cnn.classes)
        self.crop_margin = crop_margin
        self.landmark_model = landmark_model
        self.last_fallback = np.zeros(0, bool)
        self.last_landmarks: np.ndarray | None = None
        self.last_timings = {"landmarks": 0.0, "classification": 0.0}

    @property
    def uses_landmarks(self) -> bool:
        """False for a fusion that gives the landmarks no weight: then no landmark stage runs at all."""
        return bool(getattr(self.fuser, "uses_landmarks", True))

    @property
    def needs_embedding(self) -> bool:
        return "cnn_embedding" in self.fuser.inputs

    def fuse(self, cnn_proba: np.ndarray, cnn_embedding: np.ndarray | None, lm_proba: np.ndarray,
             points: np.ndarray | None) -> np.ndarray:
        """float32 (n, k) fused probabilities from precomputed parts; sets ``last_fallback``."""
        inputs = {"cnn_proba": cnn_proba, "lm_proba": lm_proba, "cnn_embedding": cnn_embedding}
        if "lm_features" in self.fuser.inputs:
            if points is None:
                raise ValueError("feature fusion needs landmark points; the landmark predictor gave none")
            inputs["lm_features"] = landmark_features(self.landmarks, points)
        proba, self.last_fallback = fz.with_fallback(self.fuser.predict_proba(inputs), cnn_proba)
        return proba

    def _run(self, x48: np.ndarray, lm: tuple[np.ndarray, np.ndarray | None] | None = None) -> np.ndarray:
        t0 = time.perf_counter()
        if lm is not None:
            lm_proba, points = lm
        elif self.uses_landmarks:
            lm_proba, points = _landmark_outputs(self.landmarks, x48)
        else:  # weight 0: a zero row gives exactly w * p_cnn with w = 1
            lm_proba, points = np.zeros((len(x48), len(self.classes))), None
        t1 = time.perf_counter()
        cnn_proba, emb = self.cnn.predict(x48)
        proba = self.fuse(cnn_proba, emb, lm_proba, points)
        self.last_timings = {"landmarks": t1 - t0, "classification": time.perf_counter() - t1}
        return proba

    def predict_proba(self, faces) -> np.ndarray:
        """float32 (n, 5); rows without landmarks are the CNN's own (see ``last_fallback``)."""
        x = to_gray_faces(faces, SIZE)
        if len(x) == 0:
            self.last_fallback, self.last_landmarks = np.zeros(0, bool), np.zeros((0, 68, 2), np.float32)
            return np.zeros((0, len(self.classes)), np.float32)
        proba = self._run(x)
        return proba

    def _crops(self, frame: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
        """Gray crops for the CNN: boxes grown by ``crop_margin`` per side (as the Analyzer crops); an empty
        crop becomes a black 48x48 face."""
        from .images import crop_boxes, to_gray

        crops, _ = crop_boxes(to_gray(np.asarray(frame)), boxes, self.crop_margin)
        return [c if c.size else np.zeros((SIZE, SIZE), np.uint8) for c in crops]

    def predict_frame(self, frame: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
        """(float32 (k, 5) probabilities, float32 (k, 68, 2) landmarks in frame pixels) for boxes int (k, 4)."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        if len(boxes) == 0:
            self.last_fallback, self.last_landmarks = np.zeros(0, bool), np.zeros((0, 68, 2), np.float32)
            return np.zeros((0, len(self.classes)), np.float32), self.last_landmarks
        x = to_gray_faces(self._crops(frame, boxes), SIZE)
        if self.uses_landmarks and hasattr(self.landmarks, "predict_frame"):
            t0 = time.perf_counter()
            lm_proba, points = self.landmarks.predict_frame(frame, boxes)
            lm = (np.asarray(lm_proba, np.float64), np.asarray(points, np.float64))
            t_lm = time.perf_counter() - t0
            proba = self._run(x, lm)
            self.last_timings["landmarks"] = t_lm
        else:
            proba = self._run(x)
            points = np.full((len(boxes), 68, 2), np.nan, np.float32)
        self.last_landmarks = np.asarray(points, np.float32)
        return proba, self.last_landmarks

    def predict_proba_frame(self, frame: np.ndarray, boxes) -> np.ndarray:
        return self.predict_frame(frame, boxes)[0]

    def count_params(self) -> int:
        return self.cnn.count_params()

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: str | Path, models_root: str | Path | None = None, extra: dict | None = None) -> Path:
        """Write the descriptor ``path`` (+ ``<stem>-fusion.skops`` for a learned head) atomically; a head
        left there by an earlier save is removed when this fusion has none (late fusion).

        CNN file(s) and ``landmark_model`` are recorded relative to ``models_root`` (default: the parent of
        the descriptor's folder, i.e. ``models/`` for ``models/hybrid/hybrid.json``)."""
        path = Path(path)
        root = Path(models_root) if models_root is not None else path.parent.parent
        if self.landmark_model is None:
            raise ValueError("set landmark_model (the landmark ensemble.json path) before saving")
        fusion = self.fuser.get_config()
        model = getattr(self.fuser, "model_", None)
        head = path.with_name(f"{path.stem}-fusion{SKOPS_SUFFIX}")
        if model is not None:
            save_sklearn(model, head)
            fusion.update(file=head.name, sha256=file_sha256(head))
        lm_path = Path(self.landmark_model)
        cnn = self.cnn.config(root, path.parent)
        if self.cnn_onnx is not None:
            cnn["onnx"] = {"file": _relative(Path(self.cnn_onnx), root), "sha256": file_sha256(self.cnn_onnx)}
        desc = {"format": FORMAT, "format_version": FORMAT_VERSION, "classes": list(self.classes),
                "models_root": os.path.relpath(root.resolve(), path.parent.resolve()),
                "cnn": cnn,
                "landmarks": {"file": _relative(lm_path, root), "sha256": file_sha256(lm_path)},
                "fusion": fusion, "crop_margin": self.crop_margin, **(extra or {})}
        validate_hybrid_descriptor(desc, path)
        _atomic.write_text(path, json.dumps(desc, indent=2) + "\n")
        if model is None:
            head.unlink(missing_ok=True)  # only after the new descriptor (which does not name it) is in place
        return path


def load_hybrid_predictor(path: Path, name: str = "hybrid", verify: bool = True) -> HybridPredictor:
    """Registry loader for ``hybrid.json``; ArtifactError naming the problem (malformed descriptor, missing
    CNN/landmark file, sha256 mismatch, a fusion head that is not a trusted ``.skops`` file)."""
    from .landmarks.predictor import load_landmark_predictor

    path = Path(path)
    desc = _read_descriptor(path, validate_hybrid_descriptor)
    root = _models_root(path, desc)
    lm_path = _checked(_resolve(desc["landmarks"]["file"], root), desc["landmarks"]["sha256"], path,
                       "landmark model", verify, "re-run `python experiments/hybrid.py` (after experiments/landmarks.py)")
    fusion = desc["fusion"]
    head = None
    if fusion.get("file"):  # checked and opened before any model is loaded
        f = _checked(path.parent / fusion["file"], fusion["sha256"], path, "fusion head", verify,
                     "re-run `python experiments/hybrid.py`")
        head = load_sklearn(f, path)
    landmarks = load_landmark_predictor(lm_path, "landmarks")
    onnx = desc["cnn"].get("onnx")
    if onnx and fusion["method"] != "feature":  # probabilities only: the ONNX twin, without TensorFlow
        cnn = OnnxCNN(_checked(_resolve(onnx["file"], root), onnx["sha256"], path, "CNN file", verify,
                               "re-run the command that made this descriptor"), name, desc["cnn"]["tta"])
    else:
        cnn = _load_cnns(desc["cnn"], root, path, name, verify)
    try:
        fuser = fz.from_config(fusion, head)
    except (KeyError, ValueError, TypeError) as e:
        raise ArtifactError(f"{path}: bad fusion section ({e})") from None
    return HybridPredictor(cnn, landmarks, fuser, name=name, crop_margin=float(desc.get("crop_margin", 0.1)),
                           landmark_model=lm_path)
