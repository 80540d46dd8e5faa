"""Peer models measured on our split: the published FER2013 mini-Xception (oarriaga/face_classification).

The peer takes 64x64x1 gray scaled to [-1, 1] and returns 7 probabilities in FER2013 order; we keep the
five study columns and renormalise them, so it answers the package's predictor contract.
It is a peer to measure against, never shipped as ours.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .labels import FER2013_EMOTIONS, STUDY_EMOTIONS, restrict_proba
from .predictors import ArtifactError, to_gray_faces


class PeerXception:
    """``predict_proba(faces) -> (n, 5)`` for an oarriaga FER2013 Keras model (.hdf5)."""

    def __init__(self, path: str | Path, name: str | None = None):
        import keras
        import tensorflow as tf

        try:
            self.model = keras.models.load_model(path, compile=False)
        except Exception as e:  # damaged or foreign file
            raise ArtifactError(f"cannot load peer model {path}: {e}") from e
        self.name = name or Path(path).stem
        self.classes = STUDY_EMOTIONS
        _, h, w, c = self.model.input_shape
        self.input_hw = (int(h), int(w))
        self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec([None, h, w, c], tf.float32)])

    def predict_proba(self, faces) -> np.ndarray:
        x = to_gray_faces(faces, self.input_hw)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        x = x[..., None].astype(np.float32) / 255.0
        p7 = np.asarray(self._fn((x - 0.5) * 2.0))
        return restrict_proba(p7, FER2013_EMOTIONS)
