"""Label maps and the 7 -> 5 remapping."""
import numpy as np
import pytest

from fer_hybrid import labels
from fer_hybrid.labels import FER2013_EMOTIONS, STUDY_EMOTIONS


def test_fer2013_ids_and_study_subset():
    assert FER2013_EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert STUDY_EMOTIONS == ("angry", "fear", "happy", "sad", "surprise")
    assert labels.EMOTIONS == STUDY_EMOTIONS
    assert labels.study_columns() == [0, 2, 3, 4, 5]


def test_emotion_id_and_unknown_name():
    assert labels.emotion_id("happy") == 3
    assert labels.emotion_id("happy", STUDY_EMOTIONS) == 2
    with pytest.raises(ValueError, match="valid: angry, disgust"):
        labels.emotion_id("contempt")


def test_to_study_drops_disgust_and_neutral():
    y7 = np.array([0, 1, 2, 3, 4, 5, 6, 3])
    y5, keep = labels.to_study(y7)
    assert keep.tolist() == [True, False, True, True, True, True, False, True]
    assert y5.tolist() == [0, 1, 2, 3, 4, 2]
    assert [STUDY_EMOTIONS[i] for i in y5] == [FER2013_EMOTIONS[i] for i in y7[keep]]


def test_remap_between_arbitrary_lists_and_range_check():
    y, keep = labels.remap(np.array([0, 1, 2]), ("a", "b", "c"), ("c", "a"))
    assert y.tolist() == [1, 0] and keep.tolist() == [True, False, True]
    y, keep = labels.remap(np.array([], dtype=int))
    assert y.size == 0 and keep.size == 0
    with pytest.raises(ValueError, match="0..6"):
        labels.to_study(np.array([0, 7]))
    with pytest.raises(ValueError):
        labels.to_study(np.array([-1]))


def test_restrict_proba_keeps_study_columns_and_renormalises():
    p7 = np.array([[0.1, 0.5, 0.1, 0.1, 0.1, 0.0, 0.1],
                   [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    p5 = labels.restrict_proba(p7)
    assert p5.shape == (2, 5) and p5.dtype == np.float32
    np.testing.assert_allclose(p5[0], [0.25, 0.25, 0.25, 0.25, 0.0], rtol=1e-6)
    assert np.isnan(p5[1]).all()  # only excluded classes: no answer, never a made-up label
