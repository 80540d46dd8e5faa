"""Model files that never run code on load, and sha256 checks (core: imports only errors and _atomic).

- :func:`file_sha256` hashes a file once per (path, size, mtime_ns) in this process; :func:`check_sha256`
  raises :class:`~.errors.ArtifactError` naming the file and where the expected hash comes from.
- :func:`save_sklearn` / :func:`load_sklearn` store fitted scikit-learn models with ``skops.io`` (a zip of
  JSON + ``.npy`` arrays, no pickle). Loading first lists every type the file names and refuses the file
  unless each one is in :data:`SKLEARN_TYPES`, the explicit list of the types our landmark members and
  fusion heads are made of; only then does skops rebuild it, trusting exactly those types.
- :func:`refuse_pickle` is called before any member file is opened: ``.joblib``/``.pkl``/``.pickle`` files
  are never read, whatever a descriptor says, because unpickling runs code chosen by whoever wrote the file.

XGBoost members stay in XGBoost's own ``.ubj`` format and Keras models in ``.keras`` (loaded with
``safe_mode=True``: see :mod:`.keras_io`); neither format deserialises code.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path

from . import _atomic
from .errors import ArtifactError

SKOPS_SUFFIX = ".skops"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle", ".pck", ".sav", ".dill")

# Every (module.class) a shipped sklearn member or fusion head is made of (landmark hgb / mlp / logreg
# members, stacking and feature-fusion heads), as listed in the skops file's schema.
SKLEARN_TYPES = frozenset({
    "builtins.dict", "builtins.list", "builtins.str", "builtins.tuple", "builtins.int", "builtins.float",
    "builtins.bool", "builtins.NoneType",
    "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint8",
    "numpy.uint64", "numpy.bool_", "numpy.dtype",
    "numpy.random._generator.Generator", "numpy.random.mtrand.RandomState",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
})

# ---------------------------------------------------------------------------------------------
# sha256, cached by (path, size, mtime_ns)
# ---------------------------------------------------------------------------------------------
_HASHES: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file. Cached in-process by (resolved path, size, mtime_ns): a file that is
    rewritten gets a new mtime or size and is hashed again."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _HASHES:
            return _HASHES[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    digest = h.hexdigest()
    with _LOCK:
        _HASHES[key] = digest
    return digest


def check_sha256(path: str | os.PathLike, expected: str | None, source: str | os.PathLike, hint: str = "") -> None:
    """ArtifactError unless ``path``'s sha256 is ``expected`` (recorded in ``source``, named in the message).
    ``expected=None`` checks nothing."""
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactError(f"{path}: its sha256 ({actual[:12]}...) does not match the sha256 in {source} "
                            f"({expected[:12]}...): the file was replaced or damaged"
                            + (f"; {hint}" if hint else ""))


# ---------------------------------------------------------------------------------------------
# No pickle, ever
# ---------------------------------------------------------------------------------------------
def refuse_pickle(path: str | os.PathLike, where: str | os.PathLike = "") -> None:
    """ArtifactError for a pickle-format file name (checked before the file is opened)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ArtifactError(f"{where or path}: {path.name} is a pickle file, which can run code when loaded; "
                            f"it is never loaded. Re-save the model with skops ({SKOPS_SUFFIX}), e.g. "
                            "`python experiments/migrate_to_skops.py` for a folder of old .joblib members")


# ---------------------------------------------------------------------------------------------
# scikit-learn models through skops
# ---------------------------------------------------------------------------------------------
def save_sklearn(model, path: str | os.PathLike) -> Path:
    """Write a fitted sklearn model to ``path`` (``.skops``) atomically; ValueError if it holds a type
    :func:`load_sklearn` would refuse (so nothing unloadable is ever written)."""
    import skops.io as sio

    path = Path(path)
    if path.suffix != SKOPS_SUFFIX:
        raise ValueError(f"{path}: sklearn models are saved as {SKOPS_SUFFIX} files")
    with _atomic.atomic_path(path) as tmp:
        sio.dump(model, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        unknown = sorted(skops_types(tmp) - SKLEARN_TYPES)
        if unknown:
            raise ValueError(f"{path}: the model holds types load_sklearn would refuse: {', '.join(unknown)}")
    return path


def skops_types(path: str | os.PathLike) -> set[str]:
    """Every "module.class" named in a skops file's schema (read as JSON; nothing is constructed)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    with zipfile.ZipFile(path) as z:
        walk(json.loads(z.read("schema.json")))
    return found


def load_sklearn(path: str | os.PathLike, where: str | os.PathLike = ""):
    """A fitted sklearn model from a ``.skops`` file. ArtifactError (naming ``where`` and the file) for a
    pickle file name, a file that is not a skops zip, or one naming any type outside :data:`SKLEARN_TYPES`
    (the untrusted types are listed); nothing from such a file is constructed."""
    import skops.io as sio

    path = Path(path)
    where = where or path
    refuse_pickle(path, where)
    if path.suffix != SKOPS_SUFFIX:
        raise ArtifactError(f"{where}: {path.name} is not a {SKOPS_SUFFIX} file; sklearn models load only from skops files")
    try:
        types = skops_types(path)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise ArtifactError(f"{where}: {path.name} is not a readable skops file ({type(e).__name__}: {e})") from None
    refused = sorted(types - SKLEARN_TYPES)
    if refused:
        raise ArtifactError(f"{where}: {path.name} names untrusted types {', '.join(refused)}; refusing to load it "
                            "(only the sklearn/numpy types in fer_hybrid.safe_io.SKLEARN_TYPES are trusted)")
    try:  # skops audits again while loading: any type it does not trust and we did not list is refused
        return sio.load(path, trusted=sorted(types))
    except sio.exceptions.UntrustedTypesFoundException as e:
        raise ArtifactError(f"{where}: {path.name} holds untrusted types ({e}); refusing to load it") from None
    except Exception as e:  # skops raises many types for damaged members
        raise ArtifactError(f"{where}: cannot load {path.name}: {type(e).__name__}: {str(e)[:200]}") from None
