"""Two networks, one view each: an output ensemble in one graph, as an alternative to one network with flip TTA.

A ``vggbn`` at 48-96-192-384 runs one view of a face in about half the time of the default's two (the face
and its mirror), so a base network plus one partner, each on the face only, costs what the flip TTA costs.
``pair_trail`` scores every candidate partner on val as the pair would run (uniform mean of the two softmax
outputs, no TTA); ``average_networks`` builds the chosen pair as one Keras model (one file, one ONNX graph).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def pair_trail(base: np.ndarray, partners: Mapping[str, np.ndarray], y: np.ndarray) -> list[dict]:
    """One row per partner, best first: {partner, accuracy} of argmax(mean(base, partner)), with base and
    partner float (n, k) probabilities on the same n faces and y int (n,) labels. Ties keep the given order.
    ValueError when shapes differ or there is no partner."""
    if not partners:
        raise ValueError("pair_trail needs at least one partner")
    base = np.asarray(base, dtype=np.float64)
    rows = []
    for name, proba in partners.items():
        proba = np.asarray(proba, dtype=np.float64)
        if proba.shape != base.shape or len(y) != len(base):
            raise ValueError(f"partner {name!r}: probabilities {proba.shape} against base {base.shape} "
                             f"and {len(y)} labels")
        rows.append({"partner": name, "accuracy": float(np.mean(((base + proba) / 2).argmax(1) == y))})
    return sorted(rows, key=lambda r: -r["accuracy"])


def average_networks(models: Sequence, name: str = "pair"):
    """One Keras model computing the uniform mean of ``models``' softmax outputs on the same input:
    float32 (n, 48, 48, 1) gray 0..255 -> (n, k). Each network is a copy (same weights) renamed
    ``member<i>`` so that the graph's layer names are unique. ValueError for fewer than two networks or
    networks with different input or output shapes."""
    import keras

    if len(models) < 2:
        raise ValueError(f"average_networks needs at least two networks, got {len(models)}")
    shapes = {(tuple(m.input_shape[1:]), tuple(m.output_shape[1:])) for m in models}
    if len(shapes) != 1:
        raise ValueError(f"the networks differ in input/output shapes: {sorted(shapes)}")
    inputs = keras.Input(models[0].input_shape[1:], dtype="float32", name="gray_0_255")
    outputs = []
    for i, model in enumerate(models):
        member = keras.Model.from_config({**model.get_config(), "name": f"member{i}"})
        member.set_weights(model.get_weights())
        outputs.append(member(inputs))
    return keras.Model(inputs, keras.layers.Average(name="mean")(outputs), name=name)
