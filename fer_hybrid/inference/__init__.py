"""Inference layer: image/video -> faces -> emotions (:class:`Analyzer`), with face tracking and smoothing
for videos. See :mod:`fer_hybrid.inference.analyzer`."""
from .analyzer import Analyzer, Face, FrameFaces, VideoSession

__all__ = ["Analyzer", "Face", "FrameFaces", "VideoSession"]
