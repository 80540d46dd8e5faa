"""FER+ majority labels on hand-made csvs (tests/data/ferplus_tiny.md lists the expected answers)."""
from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_hybrid.data import Split
from fer_hybrid.ferplus import (FerPlusError, ferplus_majority_labels, ferplus_metrics, ferplus_split_labels,
                                ferplus_vote_shares, majority_vote, resolve_files, soft_targets)
from fer_hybrid.labels import STUDY_EMOTIONS

DATA = Path(__file__).parent / "data"

VOTES = DATA / "ferplus_tiny.csv"
MAP = DATA / "ferplus_tiny_map.csv"
A, F, H, S, U = range(5)  # study ids: angry, fear, happy, sad, surprise

EXPECTED = {
    "fer2013/test/angry/PrivateTest_1.jpg": (-1, "outside_study"),   # disgust after dropping single votes
    "fer2013/test/angry/PrivateTest_2.jpg": (-1, "unmatched"),
    "fer2013/test/fear/PrivateTest_3.jpg": (F, None),
    "fer2013/test/happy/PrivateTest_4.jpg": (-1, "no_majority"),     # ten single votes
    "fer2013/test/sad/PrivateTest_5.jpg": (S, None),                 # tie pair, identical votes
    "fer2013/test/sad/PrivateTest_6.jpg": (S, None),
    "fer2013/test/angry/PublicTest_1.jpg": (-1, "outside_study"),    # contempt
    "fer2013/test/fear/PublicTest_2.jpg": (-1, "no_majority"),       # surprise 3 / fear 3
    "fer2013/test/happy/PublicTest_3.jpg": (-1, "unknown"),
    "fer2013/test/neutral/PublicTest_4.jpg": (-1, "unmatched"),
    "fer2013/train/angry/Training_1.jpg": (A, None),                 # anger 5 + five dropped single votes
    "fer2013/train/happy/Training_1.jpg": (H, None),                 # row 0, whose image name is fer0000007
    "fer2013/train/happy/Training_2.jpg": (-1, "no_majority"),       # happiness 4 / sadness 4 tie
    "fer2013/train/neutral/Training_3.jpg": (-1, "outside_study"),   # neutral
}


@pytest.fixture(scope="module")
def labels():
    return ferplus_majority_labels(VOTES, MAP)


def test_majority_labels_and_reasons(labels):
    assert set(labels) == set(EXPECTED)
    for path, (y, reason) in EXPECTED.items():
        assert labels[path] == y, path
        assert labels.reasons.get(path) == reason, path
    assert labels.outside == {"fer2013/test/angry/PrivateTest_1.jpg": "disgust",
                              "fer2013/test/angry/PublicTest_1.jpg": "contempt",
                              "fer2013/train/neutral/Training_3.jpg": "neutral"}
    c = labels.counts()
    assert c["labelled"] == 5
    assert c["excluded"]["total"] == 9 and c["excluded"]["unmatched"] == 2 and c["excluded"]["no_majority"] == 3
    assert c["excluded"]["outside_study_by_label"] == {"contempt": 1, "disgust": 1, "neutral": 1}


def test_join_is_on_row_not_image_name(labels):
    # row 0 (happy) carries the image name fer0000007.png and row 7 (no majority) fer0000000.png
    assert labels["fer2013/train/happy/Training_1.jpg"] == H
    assert labels["fer2013/test/fear/PublicTest_2.jpg"] == -1


def test_majority_rule_drops_single_votes_and_needs_more_than_half():
    cols = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
    v = np.zeros((4, 10), int)
    v[0, [4, 0, 2, 3, 6, 5]] = [5, 1, 1, 1, 1, 1]   # anger 5 + single votes -> anger
    v[1, [1, 3]] = [5, 5]                              # exact tie -> none
    v[2, [1, 3]] = [6, 4]                              # 6 of 10 -> happiness
    v[3, :] = 1                                        # nothing left -> none
    got = majority_vote(v)
    assert [cols[i] if i >= 0 else None for i in got] == ["anger", None, "happiness", None]


def test_seven_class_names_keep_neutral(labels):
    seven = ferplus_majority_labels(VOTES, MAP, classes=("angry", "disgust", "fear", "happy", "sad", "surprise",
                                                        "neutral"))
    assert seven["fer2013/train/neutral/Training_3.jpg"] == 6
    assert seven["fer2013/test/angry/PrivateTest_1.jpg"] == 1  # disgust
    assert seven.reasons["fer2013/test/angry/PublicTest_1.jpg"] == "outside_study"  # contempt still outside


def test_gzipped_map_gives_the_same_labels(labels, tmp_path):
    gz = tmp_path / "map.csv.gz"
    with open(MAP, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert dict(ferplus_majority_labels(VOTES, gz)) == dict(labels)


def test_metrics_on_a_split(labels):
    keys = np.array(["fer2013/test/angry/PrivateTest_1.jpg", "fer2013/test/angry/PrivateTest_2.jpg",
                     "fer2013/test/fear/PrivateTest_3.jpg", "fer2013/test/happy/PrivateTest_4.jpg",
                     "fer2013/test/sad/PrivateTest_5.jpg", "fer2013/test/sad/PrivateTest_6.jpg",
                     "fer2013/test/happy/PrivateTest_99.jpg"])  # last: not in the map
    split = Split(np.zeros((7, 48, 48), np.uint8), np.array([A, A, F, H, S, S, H]), keys)
    y, keep = ferplus_split_labels(split, labels)
    assert y.tolist() == [-1, -1, F, -1, S, S, -1] and keep.sum() == 3
    proba = np.full((7, 5), 0.01)
    proba[np.arange(7), [A, A, F, H, S, H, H]] = 0.96      # right on PrivateTest_3 and _5, wrong on _6
    proba[0] = np.nan                                      # an abstention on an excluded row changes nothing
    m = ferplus_metrics(proba, split, labels)
    assert m["n"] == 3 and m["n_split"] == 7 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["excluded"]["total"] == 4
    assert {k: m["excluded"][k] for k in ("unmatched", "outside_study", "no_majority", "not_in_map")} == \
        {"unmatched": 1, "outside_study": 1, "no_majority": 1, "not_in_map": 1}
    assert m["fer2013_label_agreement"] == 1.0
    # integer predictions give the same answer
    assert ferplus_metrics(proba.argmax(1), split, labels)["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="predictions"):
        ferplus_metrics(proba[:3], split, labels)


def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="fer2013new.csv.*FERPLUS_DIR"):
        resolve_files()
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ferplus_majority_labels(tmp_path / "nope.csv", MAP)


def test_env_dir_is_used(tmp_path, monkeypatch):
    shutil.copy(VOTES, tmp_path / "fer2013new.csv")
    with open(MAP, "rb") as src, gzip.open(tmp_path / "kaggle_to_ferplus_map.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    monkeypatch.setenv("FERPLUS_DIR", str(tmp_path))
    assert ferplus_majority_labels()["fer2013/test/fear/PrivateTest_3.jpg"] == F


def test_malformed_files(tmp_path):
    bad_votes = tmp_path / "v.csv"
    bad_votes.write_text("Usage,Image name,neutral\nTraining,x.png,3\n")
    with pytest.raises(FerPlusError, match="missing column"):
        ferplus_majority_labels(bad_votes, MAP)
    short = tmp_path / "short.csv"
    short.write_text("\n".join(VOTES.read_text().splitlines()[:3]) + "\n")  # only rows 0 and 1
    with pytest.raises(FerPlusError, match="outside the 2 rows"):
        ferplus_majority_labels(short, MAP)
    with pytest.raises(ValueError, match="no FER\\+ counterpart"):
        ferplus_majority_labels(VOTES, MAP, classes=("angry", "bored"))


def test_study_classes_default(labels):
    assert labels.classes == STUDY_EMOTIONS


# --------------------------------------------------------------------------------------------
# Vote shares as soft training targets
# --------------------------------------------------------------------------------------------
def test_vote_shares_drop_single_votes_and_keep_only_study_classes():
    shares = ferplus_vote_shares(VOTES, MAP)
    # unmatched (no row), and rows whose votes left after dropping singles are all outside the classes
    assert "fer2013/test/angry/PrivateTest_2.jpg" not in shares
    assert "fer2013/test/happy/PrivateTest_4.jpg" not in shares       # ten single votes
    assert "fer2013/test/angry/PrivateTest_1.jpg" not in shares       # only disgust 2 survives
    np.testing.assert_allclose(shares["fer2013/test/fear/PrivateTest_3.jpg"], [0, .6, 0, 0, .4])
    np.testing.assert_allclose(shares["fer2013/train/happy/Training_2.jpg"], [0, 0, .5, .5, 0])  # neutral 2 dropped
    np.testing.assert_allclose(shares["fer2013/train/angry/Training_1.jpg"], [1, 0, 0, 0, 0])    # singles dropped
    np.testing.assert_allclose(shares["fer2013/test/angry/PublicTest_1.jpg"], [1, 0, 0, 0, 0])   # contempt dropped
    assert all(v.shape == (5,) and v.sum() == pytest.approx(1.0) for v in shares.values())


def test_soft_targets_mix_one_hot_with_shares():
    shares = ferplus_vote_shares(VOTES, MAP)
    keys = np.array(["fer2013/test/fear/PrivateTest_3.jpg", "fer2013/train/happy/Training_2.jpg",
                     "fer2013/test/angry/PrivateTest_2.jpg"])                      # last: no FER+ votes
    split = Split(np.zeros((3, 48, 48), np.uint8), np.array([F, S, A]), keys)
    t, n_voted = soft_targets(split, shares, 0.5, 5)
    assert t.dtype == np.float32 and t.shape == (3, 5) and n_voted == 2
    np.testing.assert_allclose(t, [[0, .8, 0, 0, .2], [0, 0, .25, .75, 0], [1, 0, 0, 0, 0]])
    assert (t.argmax(1) == split.y).all()                                           # mix 0.5 never overrules
    np.testing.assert_allclose(soft_targets(split, shares, 0.0, 5)[0], np.eye(5)[split.y])
    with pytest.raises(ValueError, match=r"mix must be in \[0, 1\]"):
        soft_targets(split, shares, 1.5, 5)
