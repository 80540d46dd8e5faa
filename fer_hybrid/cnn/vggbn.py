"""``vggbn``: our CNN for 48x48 FER, VGG-style with BatchNorm, designed for 2 CPU cores.

Four blocks of two 3x3 conv + BN + ReLU (widths 48-96-192-384 by default), max-pooling and spatial
dropout between blocks, global average pooling, a 256-unit dense layer and a softmax. ~2.7M parameters,
~0.3 GFLOP per 48x48 face. Input: float32 (n, 48, 48, 1) raw gray pixels 0..255 -> softmax (n, num_classes).
"""
from __future__ import annotations

from typing import Sequence


def parse_widths(text: str) -> tuple[int, ...]:
    """"64-128-256-512" -> (64, 128, 256, 512); ValueError naming the text when it is not positive ints."""
    try:
        widths = tuple(int(w) for w in text.split("-"))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be positive integers joined by '-', e.g. 64-128-256-512; got {text!r}")
    return widths


def build_vggbn(num_classes: int = 5, input_size: int = 48, widths: Sequence[int] = (48, 96, 192, 384),
                convs_per_block: int = 2, dense: int = 256, dropout: float = 0.4, block_dropout: float = 0.1,
                weight_decay: float = 1e-4, name: str = "vggbn"):
    import keras
    from keras import layers

    reg = keras.regularizers.l2(weight_decay) if weight_decay else None
    inputs = keras.Input((48, 48, 1), name="gray_0_255")
    x = inputs
    if input_size != 48:
        x = layers.Resizing(input_size, input_size, name="resize")(x)
    x = layers.Rescaling(1.0 / 255.0, name="scale")(x)
    for b, width in enumerate(widths, start=1):
        for c in range(1, convs_per_block + 1):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=reg,
                              name=f"block{b}_conv{c}")(x)
            x = layers.BatchNormalization(name=f"block{b}_bn{c}")(x)
            x = layers.ReLU(name=f"block{b}_relu{c}")(x)
        x = layers.MaxPooling2D(name=f"block{b}_pool")(x)
        if block_dropout:
            x = layers.SpatialDropout2D(block_dropout, name=f"block{b}_drop")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_drop1")(x)
    x = layers.Dense(dense, use_bias=False, kernel_regularizer=reg, name="head_fc")(x)
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Dropout(dropout, name="head_drop2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)
