"""fer_hybrid: facial-expression recognition on FER2013 with CNNs, dlib landmarks and their fusion."""
from .labels import EMOTIONS, FER2013_EMOTIONS, STUDY_EMOTIONS
from .data import load_fer2013
from .predictors import list_models, load_predictor


def __getattr__(name):  # Analyzer and Face load lazily: `import fer_hybrid` stays light
    if name in ("Analyzer", "Face", "FrameFaces"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'fer_hybrid' has no attribute {name!r}")


__version__ = "0.1.0"
__all__ = ["Analyzer", "Face", "FrameFaces", "EMOTIONS", "FER2013_EMOTIONS", "STUDY_EMOTIONS", "load_fer2013", "list_models", "load_predictor",
           "__version__"]
