"""fer_hybrid: facial-expression recognition on FER2013 with CNNs, dlib landmarks and their fusion."""
from .labels import EMOTIONS, FER2013_EMOTIONS, STUDY_EMOTIONS
from .data import load_fer2013
from .predictors import list_models, load_predictor

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "FER2013_EMOTIONS", "STUDY_EMOTIONS", "load_fer2013", "list_models", "load_predictor",
           "__version__"]
