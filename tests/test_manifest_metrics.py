"""fer_hybrid.manifest_metrics: the one summary every shipping script writes into the manifest."""
from __future__ import annotations

import pytest

from fer_hybrid.artifacts import manifest_metrics

METRICS = {"train": {"accuracy": 0.9, "macro_f1": 0.8, "n": 25, "confusion_matrix": [[1]]},
           "val": {"accuracy": 0.6, "macro_f1": 0.5, "n": 15, "per_class": {}},
           "test": {"accuracy": None, "macro_f1": None, "n": None}}


def test_keeps_only_the_three_keys_of_every_split_in_order():
    got = manifest_metrics(METRICS)
    assert list(got) == ["train", "val", "test"]
    assert got["train"] == {"accuracy": 0.9, "macro_f1": 0.8, "n": 25}
    assert got["test"] == {"accuracy": None, "macro_f1": None, "n": None}


def test_chosen_splits_and_evaluated_only():
    assert list(manifest_metrics(METRICS, ("val", "train"))) == ["val", "train"]
    assert list(manifest_metrics(METRICS, evaluated_only=True)) == ["train", "val"]
    assert manifest_metrics({}) == {}


def test_missing_split_or_key_is_named():
    with pytest.raises(KeyError, match="no metrics for split 'test'"):
        manifest_metrics({"val": METRICS["val"]}, ("val", "test"))
    with pytest.raises(KeyError, match="'val' metrics lack macro_f1, n"):
        manifest_metrics({"val": {"accuracy": 0.5}})


def test_beats_on_val_replaces_only_a_lower_recorded_val():
    from fer_hybrid.artifacts import beats_on_val

    manifest = {"models": {"m": {"metrics": {"val": {"accuracy": 0.74}}}}}
    assert beats_on_val(manifest, "m", 0.75) == (True, 0.74)
    assert beats_on_val(manifest, "m", 0.74) == (False, 0.74)        # a tie does not replace
    assert beats_on_val(manifest, "absent", 0.1) == (True, None)
