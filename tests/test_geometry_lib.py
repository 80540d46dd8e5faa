"""The report side of fer_hybrid.evaluation.geometry (experiments/framing.py): the seeded subset, the markdown
and the mean-face figure, on hand-made measurements with known answers (no dlib)."""
from __future__ import annotations

import numpy as np
import pytest

from fer_hybrid.evaluation import geometry as geo

CLASSES = ("angry", "fear", "happy", "sad")


def measured() -> tuple[dict, np.ndarray]:
    """Four faces, two found (both angry) with the box centred, 24 px wide, eyes at (16, 20) and (32, 20)."""
    found = np.array([True, True, False, False])
    box = np.full((4, 4), np.nan)
    box[:2] = [23.5, 23.5, 24.0, 24.0]
    points = np.full((4, 68, 2), np.nan, np.float32)
    points[:2] = 30.0
    points[:2, geo.LEFT_EYE] = [16.0, 20.0]
    points[:2, geo.RIGHT_EYE] = [32.0, 20.0]
    return {"found": found, "box": box, "points": points, "score": np.where(found, 1.0, np.nan)}, np.array([0, 0, 1, 2])


def test_seeded_subset():
    np.testing.assert_array_equal(geo.seeded_subset(5, 0, 0), np.arange(5))
    np.testing.assert_array_equal(geo.seeded_subset(5, 9, 0), np.arange(5))
    a = geo.seeded_subset(100, 10, 3)
    assert len(a) == len(set(a.tolist())) == 10 and (np.diff(a) > 0).all() and a.max() < 100
    np.testing.assert_array_equal(a, geo.seeded_subset(100, 10, 3))
    assert not np.array_equal(a, geo.seeded_subset(100, 10, 4))
    with pytest.raises(ValueError, match="subset size"):
        geo.seeded_subset(100, -1, 0)


def report() -> tuple[dict, dict, dict]:
    m, y = measured()
    summary = geo.summarize(m, y, CLASSES)
    framing = geo.derive_framing(summary, "mean")
    return m, summary, {"n": 4, "seed": 7, "summary": summary, "framing": framing, "command": "python f.py",
                        "loadavg_start": "1.00 1.00 1.00", "loadavg_end": "2.00 2.00 2.00"}


def test_framing_markdown_known_answers():
    md = geo.framing_markdown(report()[2])
    assert "- 4 training faces (seeded subset, seed 7) upscaled 4x; dlib HOG (upsample 0) found a face in 2 (0.5000)." in md
    assert "| measure | all | angry | fear | happy | sad |" in md
    assert "| found_share | 0.5000 | 1.0000 | 0.0000 | 0.0000 | – |" in md     # sad: no faces at all
    assert "| box_w | 24.00 (24.00) [24.00, 24.00] | 24.00 (24.00) [24.00, 24.00] | – | – | – |" in md
    assert "| eye_distance | 16.00 (16.00) [16.00, 16.00] |" in md
    assert ("- crop side = 2.0000 x box width (a symmetric margin of 0.5000 per side), crop centre = box centre + "
            "(0.0000, 0.0000) box widths") in md
    assert "image-left eye (16.0000, 20.0000), image-right eye (32.0000, 20.0000); mean eye distance 16.0000 px" in md
    assert md.endswith("![mean face](mean_face.png)\n")


def test_mean_face_png_is_written(tmp_path):
    m, summary, rep = report()
    x48 = np.random.default_rng(0).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    geo.mean_face_png(x48, m, summary, rep["framing"], tmp_path / "mean_face.png")
    assert (tmp_path / "mean_face.png").stat().st_size > 1000
