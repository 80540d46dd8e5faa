"""Make tests/data/tiny_cnn.keras: a few-KB Keras model following the predictor contract.

Input float32 (n, 48, 48, 1) gray pixels 0..255, output softmax (n, 5) in labels.STUDY_EMOTIONS order.
Its weights are random (seed 0): it exercises the runner, not accuracy.

    python tests/data/make_tiny_model.py
"""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OUT = Path(__file__).resolve().parent / "tiny_cnn.keras"


def build():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((48, 48, 1), dtype="float32", name="gray_0_255")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def main() -> None:
    from fer_hybrid._atomic import atomic_path

    with atomic_path(OUT) as tmp:
        build().save(tmp)
    print(f"{OUT}: {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
