"""The in-the-frame run's library steps (fer_hybrid.evaluation.inframe / inframe_report) on stub detectors
and stub crop variants: variant specs, per-condition rows, the choice on val, the report's metrics."""
from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("cv2")

from fer_hybrid.evaluation import inframe as F  # noqa: E402
from fer_hybrid.evaluation import inframe_report as R  # noqa: E402

CLASSES = ("a", "b")


class Variant:
    """A FacePredictor stand-in: always the same probabilities for the one face it is given."""

    classes = CLASSES

    def __init__(self, p):
        self.p = np.asarray([p], float)
        self.calls = 0

    def run(self, frame, boxes):
        assert boxes.shape == (1, 4)
        self.calls += 1
        return (self.p,)


def test_detector_key_names_upsampling_and_rescue():
    a = types.SimpleNamespace
    assert F.detector_key(a(upsample=None, rescue_threshold=None)) == "analyzer-photo"
    assert F.detector_key(a(upsample=1, rescue_threshold=None)) == "analyzer-photo-up1"
    assert F.detector_key(a(upsample=None, rescue_threshold=0.25)) == "analyzer-photo-rescue0.25"


def test_variant_specs_default_by_input_kind():
    assert F.variant_specs(types.SimpleNamespace()) == F.CROP_VARIANTS.split(",")
    assert F.variant_specs(types.SimpleNamespace(input_kind="frame")) == ["own"]
    assert F.variant_specs(types.SimpleNamespace(input_kind="frame"), "box,eyes") == ["box", "eyes"]


def rows_for(scores: dict, conditions=("default", "rot+20"), split="val"):
    return {(v, c, split): {"accuracy_all": s[i]} for v, s in scores.items() for i, c in enumerate(conditions)}


def test_choose_variant_on_val_mean_over_conditions_first_wins_ties():
    conds = F.select_conditions(["default", "rot+20"])
    rows = {**rows_for({"box": [1.0, 0.0], "eyes": [0.6, 0.6], "level": [0.5, 0.7]}),
            **rows_for({"box": [1.0, 1.0], "eyes": [0.0, 0.0], "level": [0.0, 0.0]}, split="test")}
    chosen, select, score = F.choose_variant(rows, ["box", "eyes", "level"], conds, ["test", "val"])
    assert (chosen, select) == ("eyes", "val")        # val, never test; 0.6 ties 0.6: the first listed wins
    assert score == pytest.approx({"box": 0.5, "eyes": 0.6, "level": 0.6})
    assert F.choose_variant(rows, ["box"], conds, ["test"])[:2] == ("box", "test")   # no val: the first split
    with pytest.raises(ValueError, match="no crop variants"):
        F.choose_variant(rows, [], conds, ["val"])
    with pytest.raises(KeyError, match="variant 'own', condition 'default', split 'val'"):
        F.choose_variant(rows, ["own"], conds, ["val"])


def test_run_split_rows_default_proba_and_log():
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    idx, y = np.arange(3), np.array([0, 1, 0])
    conds = F.select_conditions(["default", "rot+20"])

    def detect(frame):  # finds the face of every frame of the default condition only, plus one false positive
        for c in conds:
            for i in idx:
                f, box = F.render(faces[i], c, F.rng_for(0, "val", c.name, int(i)))
                if np.array_equal(f, frame):
                    hit = [np.round(box).astype(int)] if c.name == "default" else []
                    return np.array(hit + [[0, 0, 5, 5]]), None
        raise AssertionError("unknown frame")

    variants = {"good": Variant([0.9, 0.1]), "bad": Variant([0.2, 0.8])}
    direct = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    lines, pred = [], {}
    rows, default, seconds = F.run_split(faces, y, idx, "val", conds, 0, variants, direct, np.ones(3, bool),
                                         detect, log=lines.append, predictions=pred)
    assert pred["good"].tolist() == [[0, 0, 0], [-1, -1, -1]] and pred["bad"].tolist() == [[1, 1, 1], [-1, -1, -1]]
    assert pred["good"].dtype == np.int16
    assert set(rows) == {(v, c.name, "val") for v in variants for c in conds}
    r = rows[("good", "default", "val")]
    assert (r["found"], r["accuracy_found"], r["false_positives_per_frame"]) == (3, pytest.approx(2 / 3), 1.0)
    assert rows[("bad", "default", "val")]["accuracy_all"] == pytest.approx(1 / 3)
    assert rows[("good", "rot+20", "val")]["found"] == 0 and rows[("good", "rot+20", "val")]["accuracy_all"] == 0
    assert set(default) == {"good", "bad"} and default["good"].shape == (3, 2)
    assert variants["good"].calls == 3 and set(seconds) == {"good", "bad"}
    assert len(lines) == 2 and lines[0].startswith("val  default   found 1.000 good=0.667 bad=0.333")


def test_default_metrics_counts_misses_as_errors():
    p = np.array([[0.9, 0.1], [np.nan, np.nan], [0.1, 0.9], [0.2, 0.8]])
    row = {"found": 3, "accuracy_all": 0.5}
    m = R.default_metrics({"test": (np.array([0, 1, 1, 0]), p)}, {("box", "default", "test"): row}, "box",
                          ["test"], CLASSES)
    assert m["train"] == {"accuracy": None}
    assert m["val"] == {"accuracy": None, "macro_f1": None, "n": None}
    assert m["test"]["accuracy"] == pytest.approx(0.5) and m["test"]["n"] == 4
    assert m["test"]["found"] == 3 and m["test"]["accuracy_all"] == 0.5


def test_condition_means_are_the_variant_tables_figures_and_old_reports_gain_them(tmp_path):
    """The mean over conditions per variant and split (misses as errors; over found faces) is recorded in
    report.json, and re-rendering a report written before the field existed adds it without touching the rest."""
    import json

    rows = {(v, c, s): {"accuracy_all": a, "accuracy_found": f}
            for v, c, s, a, f in [("level", "default", "test", 0.6, 0.7), ("level", "rot+20", "test", 0.5, 0.8),
                                  ("level", "default", "val", 0.4, 0.9), ("box", "default", "test", 0.2, 0.3)]}
    means = R.condition_means(rows)
    assert means["level"]["test"] == pytest.approx({"accuracy_all": 0.55, "accuracy_found": 0.75})
    assert means["level"]["val"] == pytest.approx({"accuracy_all": 0.4, "accuracy_found": 0.9})
    assert set(means) == {"level", "box"} and set(means["box"]) == {"test"}

    conditions = [F.Condition("default"), F.Condition("rot+20", rotation=20.0, group="rotation")]
    full = {k: {"n": 2, "found": 2, "found_share": 1.0, "found_of_original": 1.0, "false_positives_per_frame": 0.0,
                "direct_accuracy_found": 0.5, "direct_accuracy": 0.5, **r}
            for k, r in rows.items() if k[0] == "level"}
    from fer_hybrid.reports import json_ready, make_report

    old = json_ready(make_report(
        name="inframe-x", kind="cnn", weights="x (shipped)",
        metrics={"train": {"accuracy": None}, "val": {"accuracy": None, "macro_f1": None, "n": None},
                 "test": {"accuracy": 0.6, "macro_f1": 0.6, "n": 2}},
        variants=["level"], chosen_variant="level", selection_score={"level": 0.4}, selected_on="val",
        conditions=[c.to_json() for c in conditions],
        rows=[{"variant": v, "condition": c, "split": s, **m} for (v, c, s), m in full.items()]))
    (tmp_path / "report.json").write_text(json.dumps(old, indent=2) + "\n")
    R.rewrite_markdown(tmp_path)
    new = json.loads((tmp_path / "report.json").read_text())
    assert new.pop("condition_means")["level"]["test"] == pytest.approx({"accuracy_all": 0.55, "accuracy_found": 0.75})
    assert new == old
    assert "| level (chosen) | 0.4000 |" in (tmp_path / "report.md").read_text()
    assert "| 0.5500 | 0.7500 |" in (tmp_path / "report.md").read_text()
