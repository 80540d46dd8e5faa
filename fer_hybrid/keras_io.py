"""The ``.keras`` file format of the CNN track: safe loading and a fast numpy predict function.

Sits at the level of :mod:`fer_hybrid.cnn` (it registers the CNN track's serializable layers before
loading): ``cnn/``, ``hybrid`` and the registry import it; it never imports the registry.

- :func:`load_keras_model`: ``keras.models.load_model(path, compile=False, safe_mode=True)``. Safe mode
  refuses Lambda layers and other deserialised Python code; only ``.keras`` zip files are read (legacy
  HDF5 / SavedModel / pickle files are refused). Any failure is an :class:`~.errors.ArtifactError`.
- :func:`compiled_predict_fn`: one compiled ``tf.function`` of a model as a numpy function.
- :func:`configure_tensorflow_threads`: TensorFlow's thread pools, set before it starts (or at once if it has).
"""
from __future__ import annotations

import importlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import ArtifactError
from .safe_io import refuse_pickle

# modules whose import registers fer_hybrid's serializable Keras layers (HorizontalFlip, distillation layers)
LAYER_MODULES = ("fer_hybrid.cnn", "fer_hybrid.cnn.export")


def load_keras_model(path: str | os.PathLike):
    """A Keras model from a ``.keras`` file, with ``safe_mode=True``; ArtifactError if the file is unusable
    or not a ``.keras`` zip."""
    import keras

    for module in LAYER_MODULES:
        importlib.import_module(module)
    path = Path(path)
    refuse_pickle(path)
    if path.suffix != ".keras":
        raise ArtifactError(f"cannot load model file {path}: only .keras files are loaded (safe mode); got "
                            f"{path.suffix or 'no extension'!r}")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ArtifactError(f"cannot load model file {path}: not a valid .keras (zip) file; truncated or corrupt?")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # keras raises many types for a damaged zip
        raise ArtifactError(f"cannot load model file {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from e


def compiled_predict_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    """Numpy wrapper of one compiled ``tf.function`` of ``model``: float32 (m, h, w[, 1]) pixels in 0..255
    at the network's input size -> float32 (m, k). Unlike ``predict_proba`` it does not round to uint8,
    so warped TTA views go in as they are. Fast for single frames, unlike eager ``model(x)``/``model.predict``."""
    import tensorflow as tf

    _, h, w, c = model.input_shape
    fn = tf.function(lambda t: model(t, training=False), reduce_retracing=True,
                     input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])
    return lambda x: np.asarray(fn(np.asarray(x, np.float32).reshape(-1, h, w, c)), dtype=np.float32)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_intra_op_threads() -> int:
    """Intra-op threads of the model runtime (TensorFlow or onnxruntime) for one live process: 2, or 1 on a
    one-core machine. Measured on 2 cores (experiments/reports/bench-realtime): with 2, batch-1 inference takes
    about half the time and the pipelined realtime loop is faster than with 1, because the runtime's second
    thread fills the core that stage A (detection, tracking, landmarks) leaves idle; more threads than that are
    not measured here (pass them explicitly)."""
    return min(2, usable_cores())


def configure_tensorflow_threads(intra_op: int | None = 1, inter_op: int | None = 1) -> None:
    """Limit TensorFlow's thread pools (must happen before TF runs its first op; 0/None = TF default).

    Uses the TF_NUM_*_THREADS variables so that predictors without TensorFlow never import it.
    """
    for var, n in (("TF_NUM_INTRAOP_THREADS", intra_op), ("TF_NUM_INTEROP_THREADS", inter_op)):
        if n:
            os.environ[var] = str(int(n))
    if "tensorflow" in sys.modules:
        tf = sys.modules["tensorflow"]
        try:
            if intra_op:
                tf.config.threading.set_intra_op_parallelism_threads(int(intra_op))
            if inter_op:
                tf.config.threading.set_inter_op_parallelism_threads(int(inter_op))
        except (RuntimeError, AttributeError):
            pass  # context already initialised: keep what it has
