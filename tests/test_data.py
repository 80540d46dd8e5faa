"""FER2013 loaders (tar, folder, csv), errors, cache, duplicates and the tf.data pipeline (fixture data)."""
import csv
import shutil
import tarfile

import cv2
import numpy as np
import pytest

from fer_hybrid import data as fd
from fer_hybrid.data import SPLITS, DataError, FER2013, Split, load_fer2013
from fer_hybrid.labels import FER2013_EMOTIONS, STUDY_EMOTIONS

PER_SPLIT = {"train": 5, "val": 3, "test": 2}  # images per emotion in the fixture


@pytest.fixture(scope="module")
def sample_folder(sample_tar, tmp_path_factory):
    """The fixture tar extracted: <tmp>/fer2013/{train,test}/<emotion>/*.jpg; returns <tmp>."""
    root = tmp_path_factory.mktemp("folder")
    with tarfile.open(sample_tar) as tar:
        tar.extractall(root, filter="data")
    return root


def _copy_folder(src, dst):
    shutil.copytree(src, dst)
    return dst


def _expect_counts(d: FER2013, classes):
    assert d.classes == tuple(classes)
    assert d.counts() == {s: {c: PER_SPLIT[s] for c in classes} for s in SPLITS}
    for s in SPLITS:
        part = d.split(s)
        n = PER_SPLIT[s] * len(classes)
        assert part.x.shape == (n, 48, 48) and part.x.dtype == np.uint8
        assert part.y.shape == (n,) and part.y.dtype == np.int64
        assert set(part.y.tolist()) == set(range(len(classes)))
        assert len(part.keys) == n


@pytest.mark.parametrize("classes", [FER2013_EMOTIONS, STUDY_EMOTIONS], ids=["7-class", "5-class"])
def test_tar_loader_exact_counts(sample_tar, classes):
    _expect_counts(load_fer2013(sample_tar, classes), classes)


@pytest.mark.parametrize("classes", [FER2013_EMOTIONS, STUDY_EMOTIONS], ids=["7-class", "5-class"])
def test_folder_loader_exact_counts_and_same_pixels_as_tar(sample_tar, sample_folder, classes):
    folder = load_fer2013(sample_folder, classes)
    _expect_counts(folder, classes)
    tar = load_fer2013(sample_tar, classes)
    for s in SPLITS:
        a, b = folder.split(s), tar.split(s)
        ia, ib = np.argsort(a.keys), np.argsort(b.keys)
        assert a.keys[ia].tolist() == b.keys[ib].tolist()
        np.testing.assert_array_equal(a.x[ia], b.x[ib])
        np.testing.assert_array_equal(a.y[ia], b.y[ib])


def test_split_semantics_from_file_prefix(sample_data):
    assert all("/train/" in k for k in sample_data.train.keys)
    assert all(k.split("/")[-1].startswith("PublicTest_") for k in sample_data.val.keys)
    assert all(k.split("/")[-1].startswith("PrivateTest_") for k in sample_data.test.keys)
    for s in SPLITS:  # labels agree with the class folder
        part = sample_data.split(s)
        assert [STUDY_EMOTIONS[y] for y in part.y] == [k.split("/")[-2] for k in part.keys]


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        w.writerows(rows)


def test_csv_loader(tmp_path):
    rng = np.random.default_rng(0)
    usages = ["Training", "Training", "PublicTest", "PrivateTest", "Training", "PrivateTest", "PublicTest"]
    emotions = [3, 1, 0, 5, 6, 2, 4]  # includes disgust (1) and neutral (6)
    imgs = rng.integers(0, 256, size=(len(usages), 48, 48), dtype=np.uint8)
    _write_csv(tmp_path / "fer2013.csv",
               [(e, " ".join(map(str, im.ravel())), u) for e, im, u in zip(emotions, imgs, usages)])
    d7 = load_fer2013(tmp_path / "fer2013.csv", FER2013_EMOTIONS)
    assert (len(d7.train), len(d7.val), len(d7.test)) == (3, 2, 2)
    assert d7.train.y.tolist() == [3, 1, 6]
    np.testing.assert_array_equal(d7.train.x, imgs[[0, 1, 4]])
    assert d7.train.keys.tolist() == ["row:0", "row:1", "row:4"]
    assert d7.val.y.tolist() == [0, 4] and d7.test.y.tolist() == [5, 2]
    d5 = load_fer2013(tmp_path / "fer2013.csv")
    assert d5.train.y.tolist() == [STUDY_EMOTIONS.index("happy")]  # disgust, neutral dropped
    np.testing.assert_array_equal(d5.train.x, imgs[[0]])
    assert d5.test.y.tolist() == [STUDY_EMOTIONS.index("surprise"), STUDY_EMOTIONS.index("fear")]
    assert d5.train.x.dtype == np.uint8 and d5.train.x.shape == (1, 48, 48)


def test_csv_bad_row_and_missing_column(tmp_path):
    good = " ".join(["7"] * 2304)
    _write_csv(tmp_path / "fer2013.csv", [(3, good, "Training"), (3, "1 2 3", "Training"), (9, good, "PublicTest")])
    with pytest.raises(DataError, match="row 1"):
        load_fer2013(tmp_path / "fer2013.csv", use_cache=False)
    with pytest.warns(UserWarning, match="skipped 2 bad row"):
        d = load_fer2013(tmp_path / "fer2013.csv", FER2013_EMOTIONS, use_cache=False, on_error="skip")
    assert len(d.train) == 1 and len(d.val) == 0
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        load_fer2013(tmp_path / "other.csv", use_cache=False)


@pytest.mark.parametrize("fname,content", [("Training_corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg"),
                                           ("notes.txt", b"hello, I am not an image\n")],
                         ids=["corrupt-jpg", "non-image"])
def test_bad_file_in_folder_raises_naming_it_or_skips_with_warning(sample_folder, tmp_path, fname, content):
    root = _copy_folder(sample_folder, tmp_path / "copy")
    (root / "fer2013" / "train" / "happy" / fname).write_bytes(content)
    with pytest.raises(DataError, match=f"train/happy/{fname}"):
        load_fer2013(root)
    with pytest.warns(UserWarning, match=r"skipped 1 undecodable file\(s\).*" + fname):
        d = load_fer2013(root, on_error="skip")
    _expect_counts(d, STUDY_EMOTIONS)


def test_skip_warning_counts_several_files(sample_folder, tmp_path):
    root = _copy_folder(sample_folder, tmp_path / "copy")
    for i in range(3):
        (root / "fer2013" / "test" / "sad" / f"PrivateTest_bad{i}.jpg").write_bytes(b"junk")
    with pytest.warns(UserWarning, match=r"skipped 3 undecodable"):
        d = load_fer2013(root, on_error="skip")
    assert d.counts()["test"]["sad"] == 2
    with pytest.raises(ValueError, match="on_error"):
        load_fer2013(root, on_error="ignore")


def test_missing_path_says_where_to_get_the_data(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not found.*Kaggle.*FER2013_PATH"):
        load_fer2013(tmp_path / "nope.tar.gz")
    monkeypatch.delenv("FER2013_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="FER2013_PATH is not set.*Kaggle"):
        load_fer2013()


def test_unsupported_source_and_empty_folder(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match="unsupported"):
        load_fer2013(tmp_path / "data.zip")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no FER2013 images"):
        load_fer2013(tmp_path / "empty")


def test_env_var_is_honoured(sample_tar, monkeypatch):
    monkeypatch.setenv("FER2013_PATH", str(sample_tar))
    d = load_fer2013()
    assert d.source == str(sample_tar) and len(d.train) == 25


def test_cache_written_and_second_load_equal(sample_tar, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_HYBRID_CACHE", str(tmp_path / "cache"))
    first = load_fer2013(sample_tar, FER2013_EMOTIONS)
    files = list((tmp_path / "cache").glob("*.npz"))
    assert len(files) == 1 and first.sha256[:24] in files[0].name
    monkeypatch.setattr(fd, "decode_source", lambda *a, **k: pytest.fail("second load must use the cache"))
    second = load_fer2013(sample_tar, FER2013_EMOTIONS)
    assert second.sha256 == first.sha256
    for s in SPLITS:
        np.testing.assert_array_equal(second.split(s).x, first.split(s).x)
        np.testing.assert_array_equal(second.split(s).y, first.split(s).y)
        assert second.split(s).keys.tolist() == first.split(s).keys.tolist()


def test_damaged_cache_is_rebuilt(sample_tar, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_HYBRID_CACHE", str(tmp_path / "cache"))
    load_fer2013(sample_tar)
    (cfile,) = (tmp_path / "cache").glob("*.npz")
    cfile.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        d = load_fer2013(sample_tar)
    assert len(d.train) == 25
    assert cfile.stat().st_size > 1000  # rewritten


# ------------------------------------------------------------------------------------------------
# Duplicates
# ------------------------------------------------------------------------------------------------
def _images(n):
    """n distinct uint8 (48, 48) images."""
    return [np.full((48, 48), 10 * i, np.uint8) for i in range(n)]


A, B, C, D, E, F = _images(6)
#         image, label
TRAIN = [(A, 0), (A, 0), (B, 1), (B, 2), (C, 0), (D, 1)]
VAL = [(A, 0), (E, 1), (E, 1)]
TEST = [(C, 3), (E, 2), (F, 0)]


def _split(items, prefix):
    return Split(np.stack([im for im, _ in items]), np.array([y for _, y in items], np.int64),
                 np.array([f"{prefix}_{i}" for i in range(len(items))]))


def test_duplicate_report_exact_counts():
    d = FER2013(_split(TRAIN, "tr"), _split(VAL, "va"), _split(TEST, "te"), FER2013_EMOTIONS, "synthetic", "0")
    rep = fd.duplicate_report(d)
    assert rep["within"] == {"train": {"groups": 2, "images": 4, "label_conflicts": 1},  # A (same), B (1 vs 2)
                             "val": {"groups": 1, "images": 2, "label_conflicts": 0},    # E
                             "test": {"groups": 0, "images": 0, "label_conflicts": 0}}
    assert rep["across"] == {"train-val": {"groups": 1, "images": 3, "label_conflicts": 0},   # A: 2 + 1
                             "train-test": {"groups": 1, "images": 2, "label_conflicts": 1},  # C: 0 vs 3
                             "val-test": {"groups": 1, "images": 3, "label_conflicts": 1}}    # E: 1 vs 2
    assert rep["train_in_val_or_test"] == 3
    assert fd.cross_split_mask(d).tolist() == [True, True, False, False, True, False]


def test_drop_cross_split_duplicates_removes_exactly_those(tmp_path):
    root = tmp_path / "fer2013"
    for split, items in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        for i, (im, y) in enumerate(items):
            top, prefix = ("train", "Training") if split == "train" else \
                ("test", "PublicTest" if split == "val" else "PrivateTest")
            folder = root / top / FER2013_EMOTIONS[y]
            folder.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(folder / f"{prefix}_{split}{i}.png"), im)  # lossless
    full = load_fer2013(root, FER2013_EMOTIONS)
    assert len(full.train) == 6
    dropped = load_fer2013(root, FER2013_EMOTIONS, drop_cross_split_duplicates=True)
    assert sorted(k.split("/")[-1] for k in dropped.train.keys) == \
        ["Training_train2.png", "Training_train3.png", "Training_train5.png"]  # B, B, D stay
    assert len(dropped.val) == 3 and len(dropped.test) == 3  # held-out splits untouched
    assert fd.duplicate_report(dropped)["train_in_val_or_test"] == 0


# ------------------------------------------------------------------------------------------------
# tf.data pipeline
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("augment", [None, fd.Augment.none(), fd.Augment()], ids=["none", "Augment.none", "default"])
def test_make_dataset_batches(sample_data, augment):
    x, y = sample_data.train.x, sample_data.train.y
    ds = fd.make_dataset(x, y, batch_size=8, augment=augment, seed=1)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [8, 8, 8, 1]
    xb, yb = batches[0]
    assert xb.shape == (8, 48, 48, 1) and xb.dtype == np.float32
    assert yb.dtype == np.int32 and yb.tolist() == y[:8].tolist()
    assert xb.min() >= 0.0 and xb.max() <= 255.0
    if augment is None or augment == fd.Augment.none():
        np.testing.assert_array_equal(xb[..., 0], x[:8].astype(np.float32))
    else:
        assert not np.array_equal(xb[..., 0], x[:8].astype(np.float32))


def test_make_dataset_images_only_shuffled_repeat(sample_data):
    ds = fd.make_dataset(sample_data.test.x, batch_size=4, shuffle=True, repeat=True, seed=0)
    xb = next(iter(ds.take(1))).numpy()
    assert xb.shape == (4, 48, 48, 1) and xb.dtype == np.float32
    seen = {tuple(im.ravel()[:16]) for b in ds.take(5) for im in b.numpy()}  # repeat: 20 draws from 10
    assert len(seen) <= len(sample_data.test)


@pytest.mark.slow
def test_full_data_counts(full_data_path):
    d7 = load_fer2013(full_data_path, FER2013_EMOTIONS)
    assert [len(d7.split(s)) for s in SPLITS] == [28709, 3589, 3589]
    assert d7.counts()["train"]["happy"] == 7215 and d7.counts()["test"]["disgust"] == 55
    d5 = load_fer2013(full_data_path)
    assert [len(d5.split(s)) for s in SPLITS] == [23308, 2926, 2908]
    assert len(load_fer2013(full_data_path, drop_cross_split_duplicates=True).train) == 23308 - 606
