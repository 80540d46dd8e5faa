"""One prediction contract for every model, and the registry: model names -> loaded predictors.

Contract: ``predictor.predict_proba(faces) -> float32 (n, 5)`` with rows summing to 1 in the order of
``labels.STUDY_EMOTIONS``; ``faces`` follows the input rules of :mod:`fer_hybrid.crops` (one 2-D / 3-D
array is one face; a batch is a uint8 (n, h, w) array, an (n, h, w, c) array or a list; uint8 pixels,
floats in [0, 1] refused). A row of NaN means "no answer" (e.g. no landmarks) and must never be shown as a
label.

The registry is data: names, kinds, files, loaders, TTA and training commands come from the models
folder's ``manifest.json`` (:mod:`fer_hybrid.artifacts`); nothing here names a model. A folder without a
manifest (e.g. a test folder holding one ``.keras`` file) uses the names of the shipped manifest and is
not sha256-checked, since there is nothing to check against. In a folder with a manifest, every file is
checked against the manifest's sha256 before it is opened.

>>> list_models(); model_table()
>>> p = load_predictor(list_models()[0]); p.predict_proba(faces)
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from .artifacts import MANIFEST, builtin_models_dir, entry_kind, entry_loader, models_dir, read_manifest
from .crops import to_gray_faces
from .errors import ArtifactError, ArtifactMissingError
from .keras_io import compiled_predict_fn, load_keras_model
from .labels import STUDY_EMOTIONS
from .safe_io import check_sha256, refuse_pickle

__all__ = ["ArtifactError", "ArtifactMissingError", "KerasPredictor", "ModelSpec", "Predictor", "LOADERS",
           "compiled_predict_fn", "default_model", "list_models", "load_keras_model", "load_keras_predictor",
           "load_predictor", "model_spec", "model_table", "to_gray_faces"]

# loader name (manifest "loader") -> "module:function" taking (path: Path, name: str) -> Predictor
LOADERS = {
    "keras": "fer_hybrid.predictors:load_keras_predictor",
    "landmarks": "fer_hybrid.landmarks.predictor:load_landmark_predictor",
    "hybrid": "fer_hybrid.hybrid:load_hybrid_predictor",
    "cnn_ensemble": "fer_hybrid.hybrid:load_cnn_ensemble_predictor",
    "onnx": "fer_hybrid.onnx_model:OnnxPredictor",
}


@runtime_checkable
class Predictor(Protocol):
    """Every model: ``predict_proba(crops) -> (n, 5)``. ``input_kind`` tells the Analyzer what to hand over:
    ``"crops"`` (gray crops of the face boxes) or ``"frame"`` (the predictor then also implements
    ``predict_frame(frame, boxes) -> (proba (k, 5), points (k, 68, 2))``; see fer_hybrid.inference)."""

    name: str
    classes: tuple[str, ...]
    input_kind: str

    def predict_proba(self, faces) -> np.ndarray:  # (n, 5)
        ...


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One manifest entry as the registry reads it. ``sha256`` None = registered but not shipped."""

    name: str
    kind: str                 # baseline | cnn | landmarks | hybrid | ...
    artifact: str             # file name inside the models folder
    loader: str               # a key of LOADERS
    train_command: str
    description: str = ""
    tta: str = "none"         # keras loader: the TTA policy the network runs with (what its metrics measured)
    sha256: str | None = None
    test_accuracy: float | None = None
    val_accuracy: float | None = None
    ms_per_face: float | None = None
    calibration: dict | None = None   # {"temperature", "bias", "report"}: applied by the Analyzer
    extra_files: tuple[tuple[str, str], ...] = ()   # (file relative to the artifact's folder, sha256)

    @classmethod
    def from_entry(cls, name: str, e: dict) -> "ModelSpec":
        test = (e.get("metrics") or {}).get("test") or {}
        val = (e.get("metrics") or {}).get("val") or {}
        return cls(name=name, kind=entry_kind(e), artifact=e["file"], loader=entry_loader(e),
                   train_command=e.get("train_command") or e.get("command") or "(no training command recorded)",
                   description=e.get("description", ""), tta=e.get("tta", "none"), sha256=e.get("sha256"),
                   test_accuracy=test.get("accuracy"), val_accuracy=val.get("accuracy"), ms_per_face=e.get("ms_per_face"),
                   calibration=e.get("calibration"),
                   extra_files=tuple((x["file"], x["sha256"]) for x in e.get("extra_files", [])))


@dataclasses.dataclass(frozen=True)
class _Catalogue:
    root: Path
    specs: dict[str, ModelSpec]
    default: str | None
    manifest: Path | None      # the manifest the files are checked against; None: folder without one


def _catalogue(root: str | Path | None) -> _Catalogue:
    """The registry for the models folder ``root``: its own manifest, else the shipped one's names."""
    root = Path(root) if root is not None else models_dir()
    manifest = read_manifest(root)
    checked = root / MANIFEST if (root / MANIFEST).exists() else None
    if checked is None:
        builtin = builtin_models_dir()
        manifest = read_manifest(builtin) if builtin is not None else {"models": {}}
    specs = {n: ModelSpec.from_entry(n, e) for n, e in sorted(manifest["models"].items())}
    return _Catalogue(root, specs, manifest.get("default"), checked)


def list_models(available_only: bool = False, root: str | Path | None = None) -> list[str]:
    """Names :func:`load_predictor` accepts (optionally only those whose artifact is present), sorted."""
    cat = _catalogue(root)
    names = list(cat.specs)
    if available_only:
        names = [n for n in names if (cat.root / cat.specs[n].artifact).exists()]
    return names


def model_spec(name: str, root: str | Path | None = None) -> ModelSpec:
    """The registry entry of ``name``; ValueError listing the valid names when unknown."""
    cat = _catalogue(root)
    try:
        return cat.specs[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(cat.specs)}") from None


def default_model(root: str | Path | None = None) -> str:
    """The manifest's ``default`` if its file is present, else the available model with the best recorded
    val accuracy (chosen on val, never on test); ArtifactMissingError when no model file is present."""
    cat = _catalogue(root)
    available = set(list_models(available_only=True, root=cat.root))
    if cat.default in available:
        return cat.default
    if available:
        return max(sorted(available), key=lambda n: cat.specs[n].val_accuracy or 0.0)
    hint = cat.specs[cat.default].train_command if cat.default in cat.specs else "see models/README.md"
    raise ArtifactMissingError(f"no trained model found in {cat.root}; train one, e.g. `{hint}`")


def model_table(root: str | Path | None = None) -> list[dict]:
    """One row per registered model, for ``--list-models``: {"name", "kind", "tta", "test_accuracy" (as
    run: the manifest's, which ``python -m fer_hybrid.verify`` reproduces), "ms_per_face" (batch 1, from the
    model's report), "available" (file present), "default", "description", "train_command"}."""
    cat = _catalogue(root)
    available = set(list_models(available_only=True, root=cat.root))
    try:
        default = default_model(cat.root)
    except ArtifactMissingError:
        default = None
    return [{"name": n, "kind": s.kind, "tta": s.tta, "test_accuracy": s.test_accuracy, "ms_per_face": s.ms_per_face,
             "available": n in available, "default": n == default, "description": s.description,
             "train_command": s.train_command} for n, s in cat.specs.items()]


def check_artifact(name: str, root: str | Path | None = None) -> Path:
    """The artifact path of ``name`` after the registry's checks: ArtifactMissingError (names the training
    command) if absent; ArtifactError for a pickle file, an entry without sha256 in a folder with a manifest,
    or a file (or extra file) whose sha256 differs from the manifest's."""
    cat = _catalogue(root)
    spec = model_spec(name, cat.root)
    path = cat.root / spec.artifact
    if not path.exists():
        raise ArtifactMissingError(f"model {name!r} has no artifact at {path}; train it with `{spec.train_command}`")
    refuse_pickle(path, cat.manifest or path)
    if cat.manifest is not None:
        if spec.sha256 is None:
            raise ArtifactError(f"{cat.manifest}: field 'models.{name}.sha256' is missing, so {path.name} cannot be "
                                f"checked; ship it with `{spec.train_command}`")
        hint = f"restore it or re-make it with `{spec.train_command}`"
        check_sha256(path, spec.sha256, cat.manifest, hint)
        for rel, sha in spec.extra_files:
            extra = path.parent / rel
            if not extra.exists():
                raise ArtifactError(f"{cat.manifest}: model {name!r} lists {rel}, which is missing from {path.parent}")
            check_sha256(extra, sha, cat.manifest, hint)
    return path


def load_predictor(name: str, root: str | Path | None = None) -> Predictor:
    """Load a registered model. ValueError for an unknown name (lists the valid ones),
    ArtifactMissingError (names the training command) or ArtifactError (corrupt file, sha256 mismatch,
    malformed manifest or descriptor, a format that could run code).

    The predictor's ``calibration`` attribute is its manifest entry's calibration (None without one): the
    Analyzer applies it; ``predict_proba`` itself returns the model's own probabilities."""
    spec = model_spec(name, root)
    path = check_artifact(name, root)
    if spec.loader == "keras":
        predictor = load_keras_predictor(path, name, tta=spec.tta)
    else:
        module, func = LOADERS[spec.loader].split(":")
        loader: Callable = getattr(importlib.import_module(module), func)
        predictor = loader(path, name)
    predictor.calibration = spec.calibration
    return predictor


# ---------------------------------------------------------------------------------------------
# Keras CNNs
# ---------------------------------------------------------------------------------------------
class KerasPredictor:
    """A Keras model taking float32 (n, h, w, 1) gray pixels in 0..255 and returning softmax (n, 5),
    optionally averaged over the views of a TTA policy (:mod:`fer_hybrid.cnn.tta`; ``"none"``: the face as is).

    Resizing to the network's size, channel replication and normalisation are layers inside the
    model, so the saved ``.keras`` file is self-contained. Inference runs through one compiled
    ``tf.function`` (``predict_pixels``; fast for single frames, unlike eager ``model(x)`` or ``model.predict``).
    """

    input_kind = "crops"

    def __init__(self, model, name: str, classes: Sequence[str] = STUDY_EMOTIONS, tta: str = "none"):
        self.model = model
        self.name = name
        self.classes = tuple(classes)
        _, h, w, _ = model.input_shape
        self.input_hw = (int(h), int(w))
        self.predict_pixels = compiled_predict_fn(model)
        self.tta = tta
        if tta != "none":
            from .cnn.tta import tta_policy

            self.views = tta_policy(tta)  # ValueError listing the policies for an unknown name

    def predict_proba(self, faces) -> np.ndarray:
        x = to_gray_faces(faces, self.input_hw)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        if self.tta == "none":
            return self.predict_pixels(x)
        from .cnn.tta import predict_tta

        return predict_tta(self.predict_pixels, x, self.views)

    @classmethod
    def from_file(cls, path: str | Path, name: str, tta: str = "none") -> "KerasPredictor":
        return cls(load_keras_model(path), name, tta=tta)


def load_keras_predictor(path: Path, name: str, tta: str = "none") -> KerasPredictor:
    """Loader for ``.keras`` files; ArtifactError for an unusable file or an unknown TTA policy."""
    model = load_keras_model(path)
    try:
        return KerasPredictor(model, name, tta=tta)
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from None
