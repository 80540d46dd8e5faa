"""CNN track: backbone registry, VGGFace, and training.

Importing this package imports :mod:`.layers`, which registers fer_hybrid's serializable Keras layers
before ``keras.models.load_model`` runs (``fer_hybrid.keras_io.load_keras_model`` relies on it).
"""
from . import layers  # noqa: F401
