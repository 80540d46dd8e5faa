"""A CNN exported to ONNX, run with onnxruntime: the registry's predictor contract without TensorFlow.

``OnnxPredictor(path, name).predict_proba(faces) -> float32 (n, k)``; ``faces`` as for every predictor
(uint8 (n, 48, 48) gray or a list of gray/BGR crops). The graph takes float32 (n, 48, 48, 1) pixels in
0..255 and holds all preprocessing (and, for models shipped with it, the flip TTA), like the ``.keras``
file it was exported from. Importing this module does not import TensorFlow, so start-up stays fast.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .keras_io import default_intra_op_threads
from .labels import STUDY_EMOTIONS
from .predictors import ArtifactError, to_gray_faces


class OnnxPredictor:
    """``threads``: intra-op threads (None: ``$TF_NUM_INTRAOP_THREADS``, the variable the CLIs set for both
    runtimes, else :func:`fer_hybrid.keras_io.default_intra_op_threads`)."""
    input_kind = "crops"

    def __init__(self, path: str | os.PathLike, name: str, classes: Sequence[str] = STUDY_EMOTIONS,
                 threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads is None:
            threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0") or 0) or default_intra_op_threads()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # Idle threads sleep instead of spinning: a spinning worker takes the core that the video pipeline's
        # stage A (detection, tracking, landmarks) needs (measured: experiments/reports/bench-realtime).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for missing/corrupt files
            raise ArtifactError(f"cannot load ONNX model {path}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_hw = (int(inp.shape[1]), int(inp.shape[2]))
        self.name = name
        self.classes = tuple(classes)
        self.path = Path(path)

    def predict_proba(self, faces) -> np.ndarray:
        x = to_gray_faces(faces, self.input_hw)
        if len(x) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        out = self.session.run(None, {self.input_name: x.astype(np.float32)[..., None]})[0]
        return np.asarray(out, np.float32)
