"""npz_cache.cached_arrays: computes once, reads back, recovers from a damaged file, leaves no temp file."""
import numpy as np

from fer_hybrid.npz_cache import cached_arrays, read_arrays, write_arrays


def test_computes_once_then_reads_back(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"p": np.arange(6, dtype=np.float32).reshape(2, 3), "seconds": np.float64(1.5)}

    path = tmp_path / "sub" / "c.npz"
    first = cached_arrays(path, compute)
    second = cached_arrays(path, compute)
    assert len(calls) == 1 and path.exists()
    np.testing.assert_array_equal(first["p"], second["p"])
    assert second["p"].dtype == np.float32 and float(second["seconds"]) == 1.5
    assert sorted(p.name for p in path.parent.iterdir()) == ["c.npz"]  # no temp file left


def test_a_damaged_cache_is_recomputed_and_replaced(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert read_arrays(path) is None
    out = cached_arrays(path, lambda: {"x": np.ones(3)})
    np.testing.assert_array_equal(out["x"], np.ones(3))
    np.testing.assert_array_equal(read_arrays(path)["x"], np.ones(3))


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    assert read_arrays(path) is None  # allow_pickle=False: refused, so it is recomputed
    assert cached_arrays(path, lambda: {"x": np.zeros(2)})["x"].tolist() == [0.0, 0.0]


def test_refresh_store_and_warnings(tmp_path):
    import warnings

    import pytest

    from fer_hybrid.npz_cache import load_or_compute

    path = tmp_path / "c.npz"
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.full(2, len(calls))}

    assert load_or_compute(path, compute)[1] is True and load_or_compute(path, compute)[1] is False
    z, computed = load_or_compute(path, compute, refresh=True)          # recomputed and overwritten
    assert computed and z["x"].tolist() == [2, 2] and read_arrays(path)["x"].tolist() == [2, 2]
    z, computed = load_or_compute(tmp_path / "none.npz", compute, store=False)
    assert computed and not (tmp_path / "none.npz").exists()
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ignoring unreadable landmark cache .*c.npz"):
        load_or_compute(path, compute, what="landmark cache")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.warns(UserWarning, match="could not write cache"):
        z, _ = load_or_compute(blocked / "c.npz", compute)     # a cache is a convenience: the arrays still come back
    assert z["x"].tolist() == [5, 5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_or_compute(path, compute)                          # readable again: no warning


def test_write_arrays_round_trips_compressed_or_not_and_leaves_no_temp(tmp_path):
    import zipfile

    arrays = {"a": np.zeros((50, 50), np.int16), "names": np.array(["x", "y"])}
    for compressed, method in ((False, zipfile.ZIP_STORED), (True, zipfile.ZIP_DEFLATED)):
        path = tmp_path / f"sub-{compressed}" / "w.npz"
        assert write_arrays(path, arrays, compressed=compressed) == path
        back = read_arrays(path)
        np.testing.assert_array_equal(back["a"], arrays["a"])
        assert back["names"].tolist() == ["x", "y"]
        with zipfile.ZipFile(path) as z:
            assert {i.compress_type for i in z.infolist()} == {method}
        assert [p.name for p in path.parent.iterdir()] == ["w.npz"]
