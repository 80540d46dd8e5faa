"""Classical floor models on raw faces: HOG descriptors of the 48x48 face -> linear classifier.

Used as the pipeline's end-to-end floor (``experiments/pixels_baseline.py``); follows the predictor
contract: ``predict_proba(faces) -> (n, 5)``.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .labels import STUDY_EMOTIONS
from .predictors import to_gray_faces


class HogFeatures(TransformerMixin, BaseEstimator):
    """uint8 faces (n, 48, 48) -> float32 HOG descriptors (n, d) plus 12x12 downscaled pixels (n, 144)."""

    def __init__(self, cell: int = 8, block: int = 16, bins: int = 9, thumbnail: int = 12):
        self.cell = cell
        self.block = block
        self.bins = bins
        self.thumbnail = thumbnail

    def fit(self, X, y=None):
        return self

    def transform(self, X) -> np.ndarray:
        import cv2

        faces = to_gray_faces(X, 48)
        hog = cv2.HOGDescriptor((48, 48), (self.block, self.block), (self.cell, self.cell), (self.cell, self.cell),
                                self.bins)
        feats = [np.concatenate([hog.compute(f).ravel(),
                                 cv2.resize(f, (self.thumbnail, self.thumbnail), interpolation=cv2.INTER_AREA)
                                 .ravel() / 255.0]) for f in faces]
        return np.asarray(feats, np.float32).reshape(len(faces), -1)


class ClassicalPredictor:
    """Wraps a fitted sklearn pipeline (faces -> proba) in the package's predictor contract."""

    def __init__(self, pipeline, name: str = "pixels-hog-logreg"):
        self.pipeline = pipeline
        self.name = name
        self.classes = STUDY_EMOTIONS

    def predict_proba(self, faces) -> np.ndarray:
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return self.pipeline.predict_proba(to_gray_faces(faces, 48)).astype(np.float32)


def hog_logreg(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(HogFeatures(), StandardScaler(), LogisticRegression(C=C, max_iter=300))
