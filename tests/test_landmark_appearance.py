"""LandmarkAppearance / FaceFeatures: shapes, names, known answers, NaN rows, PCA, save/load, dataset cache."""
from __future__ import annotations

import numpy as np
import pytest

from fer_hybrid.landmarks.appearance import (DESCRIPTORS, N_LBP, SITE_SETS, AppearanceFileError, FaceFeatures,
                                             LandmarkAppearance, align, mirror_faces, origin, window_size)
from fer_hybrid.landmarks.extract import extract_appearance_fer2013, landmarks_batch
from fer_hybrid.landmarks.features import LandmarkFeatures


@pytest.fixture(scope="module")
def faces(sample_data):
    """(uint8 (n, 48, 48), float32 (n, 68, 2)) of the fixture's training faces."""
    x = sample_data.train.x
    return x, landmarks_batch(x)


def _level_points(n: int = 3) -> np.ndarray:
    """A fixed, level 68-point face in a 48 px image (eyes at y=18, 20 px apart), (n, 68, 2)."""
    rng = np.random.default_rng(0)
    p = np.column_stack([rng.uniform(8, 40, 68), rng.uniform(8, 44, 68)])
    p[36:42] = [[12, 18], [13, 17], [15, 17], [16, 18], [15, 19], [13, 19]]   # centre (14, 18)
    p[42:48] = p[36:42] + [20, 0]                                             # centre (34, 18)
    return np.repeat(p[None], n, axis=0)


@pytest.mark.parametrize("descriptor", DESCRIPTORS)
@pytest.mark.parametrize("sites", list(SITE_SETS))
def test_shapes_names_and_finite_rows(faces, descriptor, sites):
    x, pts = faces
    app = LandmarkAppearance(descriptor, sites, patch=0.5, cells=2, bins=4)
    raw = app.describe(x, pts)
    channels = {"hog": 4, "lbp": N_LBP, "gabor": 8}[descriptor]
    assert raw.shape == (len(x), len(SITE_SETS[sites]) * 4 * channels) == (len(x), app.n_raw)
    assert raw.dtype == np.float32 and np.isfinite(raw).all()
    names = app.feature_names()
    assert len(names) == app.n_features == raw.shape[1] == len(set(names))


def test_faces_without_landmarks_give_nan_rows(faces):
    x, pts = faces
    pts = np.array(pts[:4], np.float64)
    pts[1] = np.nan
    pts[2, 36:48] = 20.0            # coincident eyes
    out = LandmarkAppearance("hog").describe(x[:4], pts)
    assert np.isfinite(out[[0, 3]]).all() and np.isnan(out[[1, 2]]).all()


def test_alignment_puts_the_eyes_on_fixed_pixels():
    # a rotated, scaled face: after alignment its eye centres sit iod pixels apart on a horizontal line
    pts = _level_points(1)
    c, s = np.cos(0.4), np.sin(0.4)
    centre = np.array([24.0, 24.0])
    rotated = (pts - centre) @ np.array([[c, -s], [s, c]]).T * 1.3 + centre
    img = np.zeros((1, 48, 48), np.uint8)
    for eye in (rotated[0, 36:42].mean(0), rotated[0, 42:48].mean(0)):    # bright dots at the eye centres
        x, y = np.rint(eye).astype(int)
        img[0, y - 1:y + 2, x - 1:x + 2] = 255
    faces, norm, ok = align(img, rotated, iod=20.0)
    assert ok.all() and faces.shape == (1, window_size(20.0), window_size(20.0))
    np.testing.assert_allclose(norm[0, 36:42].mean(0), [-0.5, 0], atol=1e-9)
    for cx in (-0.5, 0.5):   # the brightest pixel near each expected eye position is within ~1 px of it
        ex, ey = origin(20.0) + [cx * 20.0, 0.0]
        win = faces[0, int(ey) - 3:int(ey) + 4, int(ex) - 3:int(ex) + 4]
        dy, dx = np.unravel_index(np.argmax(win), win.shape)
        assert abs(int(ey) - 3 + dy - ey) <= 1.5 and abs(int(ex) - 3 + dx - ex) <= 1.5


def test_hog_of_vertical_stripes_is_all_horizontal_gradient():
    # vertical stripes have only x gradients: orientation 0, split equally between the first and last of
    # the unsigned bins (bin centres at (k + 0.5) * 180 / bins degrees)
    img = np.tile(np.repeat(np.array([0, 255] * 12, np.uint8), 2), (48, 1))[None].repeat(3, axis=0)
    app = LandmarkAppearance("hog", "corners", patch=0.5, cells=1, bins=6)
    raw = app.describe(img, _level_points(3)).reshape(3, -1, 6)
    assert np.isfinite(raw).all()
    np.testing.assert_allclose(raw[..., 1:5], 0, atol=1e-6)
    np.testing.assert_allclose(raw[..., 0], raw[..., 5], rtol=1e-4)


def test_lbp_of_a_flat_face_is_one_pattern_and_gabor_has_no_energy():
    img = np.full((2, 48, 48), 100, np.uint8)
    lbp = LandmarkAppearance("lbp", "core", cells=2).describe(img, _level_points(2)).reshape(2, -1, N_LBP)
    np.testing.assert_allclose(lbp.sum(-1), 1, atol=1e-6)          # each cell: fractions of its pixels
    assert (lbp.max(-1) == 1).all() and len(set(lbp.argmax(-1).ravel())) == 1
    gabor = LandmarkAppearance("gabor", "core").describe(img, _level_points(2))
    np.testing.assert_allclose(gabor, 0, atol=1e-3)


def test_mirror_faces_twice_is_identity(faces):
    x, pts = faces
    fx, fp = mirror_faces(*mirror_faces(x, pts))
    np.testing.assert_array_equal(fx, x)
    np.testing.assert_allclose(fp, pts, atol=1e-5)


def test_pca_fit_project_save_load_round_trip(faces, tmp_path):
    x, pts = faces
    app = LandmarkAppearance("hog", "core", pca=5).fit(x, pts)
    out = app.transform(x, pts)
    assert out.shape == (len(x), 5) and app.feature_names()[0] == "app_hog_pc000"
    entry = app.save(tmp_path / "appearance.npz")
    assert entry["n_features"] == 5 and entry["file"] == "appearance.npz"
    back = LandmarkAppearance.load(entry, tmp_path)
    assert back.get_params() == app.get_params()
    np.testing.assert_array_equal(back.transform(x, pts), out)
    raw_only = LandmarkAppearance("lbp", "corners")
    assert LandmarkAppearance.load(raw_only.save(tmp_path / "raw.npz"), tmp_path).n_features == raw_only.n_raw


def test_load_refuses_damaged_missing_or_mismatched_files(faces, tmp_path):
    x, pts = faces
    entry = LandmarkAppearance("hog", "core", pca=5).fit(x, pts).save(tmp_path / "appearance.npz")
    with pytest.raises(AppearanceFileError, match="missing"):
        LandmarkAppearance.load({**entry, "file": "nope.npz"}, tmp_path)
    with pytest.raises(AppearanceFileError, match="settings differ"):
        LandmarkAppearance.load({**entry, "sha256": None, "params": {**entry["params"], "patch": 0.7}}, tmp_path)
    with pytest.raises(AppearanceFileError, match="lacks"):
        LandmarkAppearance.load({"file": "appearance.npz"}, tmp_path)
    (tmp_path / "appearance.npz").write_bytes(b"not an npz")
    with pytest.raises(AppearanceFileError, match="sha256"):
        LandmarkAppearance.load(entry, tmp_path)
    with pytest.raises(AppearanceFileError, match="cannot load"):
        LandmarkAppearance.load({**entry, "sha256": None}, tmp_path)


def test_bad_settings_and_inputs_raise_value_errors(faces):
    with pytest.raises(ValueError, match="valid: hog, lbp, gabor"):
        LandmarkAppearance("sift")
    with pytest.raises(ValueError, match="valid: corners, core, full"):
        LandmarkAppearance("hog", sites="everything")
    with pytest.raises(ValueError, match="patch"):
        LandmarkAppearance("hog", patch=0)
    x, pts = faces
    with pytest.raises(ValueError, match=r"landmarks \(n, 68, 2\)"):
        LandmarkAppearance("hog").describe(x, pts[:2])
    with pytest.raises(ValueError, match="not fitted"):
        LandmarkAppearance("hog", pca=3).transform(x, pts)
    with pytest.raises(ValueError, match="more than"):
        LandmarkAppearance("hog", pca=500).fit(x, pts)


def test_face_features_concatenate_geometry_then_appearance(faces):
    x, pts = faces
    geo = LandmarkFeatures().fit(pts)
    app = LandmarkAppearance("hog", "corners", pca=4).fit(x, pts)
    both = FaceFeatures(geo, app)
    out = both.transform(x, pts)
    n_geo = len(geo.get_feature_names_out())
    assert out.shape == (len(x), n_geo + 4) and len(both.feature_names()) == out.shape[1]
    np.testing.assert_allclose(out[:, :n_geo], geo.transform(pts))
    np.testing.assert_allclose(out[:, n_geo:], app.transform(x, pts), rtol=1e-6)
    assert FaceFeatures(None, app).transform(x, pts).shape == (len(x), 4)
    assert FaceFeatures(geo).transform(x, pts).shape == (len(x), n_geo)
    with pytest.raises(ValueError, match="geometry, appearance or both"):
        FaceFeatures()


def test_dataset_extraction_is_cached_and_matches_describe(sample_tar, sample_data):
    app = LandmarkAppearance("hog", "corners")
    first = extract_appearance_fer2013(sample_tar, app, "fixed", n_jobs=1, progress=False)
    again = extract_appearance_fer2013(sample_tar, app, "fixed", n_jobs=1, progress=False)
    assert not first.from_cache and again.from_cache
    np.testing.assert_array_equal(first.raw, again.raw)
    np.testing.assert_array_equal(first.raw_mirror, again.raw_mirror)
    keys = sample_data.test.keys
    x = sample_data.test.x
    pts = landmarks_batch(x, "fixed")
    np.testing.assert_array_equal(again.rows_for(keys), app.describe(x, pts))
    np.testing.assert_array_equal(again.rows_for(keys, mirror=True), app.describe(*mirror_faces(x, pts)))
    other = extract_appearance_fer2013(sample_tar, LandmarkAppearance("hog", "corners", patch=0.7), "fixed",
                                       n_jobs=1, progress=False)
    assert not other.from_cache   # the settings are part of the cache key
    with pytest.raises(KeyError, match="not in this appearance extraction"):
        again.rows_for(["nope"])


def test_refresh_recomputes_and_rewrites_the_caches(sample_tar):
    from fer_hybrid.landmarks.extract import extract_fer2013

    app = LandmarkAppearance("hog", "corners", patch=0.6)
    extract_appearance_fer2013(sample_tar, app, "fixed", n_jobs=1, progress=False)
    fresh = extract_appearance_fer2013(sample_tar, app, "fixed", n_jobs=1, progress=False, refresh=True)
    assert not fresh.from_cache
    again = extract_appearance_fer2013(sample_tar, app, "fixed", n_jobs=1, progress=False)
    assert again.from_cache and again.seconds == fresh.seconds        # the refreshed timing was written
    lm_fresh = extract_fer2013(sample_tar, "fixed", n_jobs=1, progress=False, refresh=True)
    lm_again = extract_fer2013(sample_tar, "fixed", n_jobs=1, progress=False)
    assert not lm_fresh.from_cache and lm_again.from_cache and lm_again.seconds == lm_fresh.seconds
