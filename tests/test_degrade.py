"""fer_hybrid.data.degrade: the low-resolution / blur / noise training degradations (Augment fields)."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from fer_hybrid.data import Augment, degrade, make_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(x, **kw):
    return degrade(tf.constant(np.asarray(x, np.float32)), Augment(**kw), seed=3).numpy()


def test_default_augment_does_not_degrade_and_old_configs_still_load():
    assert not Augment().degrades and not Augment.none().degrades
    old = {k: v for k, v in dataclasses.asdict(Augment()).items() if k not in ("low_res", "blur", "noise", "degrade_p")}
    assert Augment(**old) == Augment()
    assert Augment(blur=1.0).degrades and not Augment(blur=1.0, degrade_p=0.0).degrades


@pytest.mark.parametrize("kw, message", [
    (dict(low_res=1.0), "low_res must be in [0, 1), got 1.0"),
    (dict(blur=-1.0), "blur and noise must be >= 0 and degrade_p in [0, 1]"),
    (dict(degrade_p=1.5), "degrade_p in [0, 1]"),
])
def test_bad_degradations_are_refused(kw, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        Augment(**kw)


def test_probability_zero_leaves_images_untouched():
    x = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 1))
    np.testing.assert_array_equal(_run(x, low_res=0.5, blur=1.0, noise=8.0, degrade_p=0.0), x.astype(np.float32))


def test_blur_and_low_res_keep_a_flat_image_flat():
    x = np.full((4, 48, 48, 1), 100.0)
    np.testing.assert_allclose(_run(x, low_res=0.5, blur=1.5, degrade_p=1.0), x, atol=1e-3)


def test_blur_spreads_an_impulse_symmetrically_and_keeps_its_mass():
    x = np.zeros((2, 48, 48, 1))
    x[:, 24, 24, 0] = 255.0
    y = _run(x, blur=1.5, degrade_p=1.0)[..., 0]
    assert y.shape == (2, 48, 48)
    np.testing.assert_allclose(y.sum(axis=(1, 2)), 255.0, rtol=1e-4)
    assert (y[:, 24, 24] < 255.0).all() and (y[:, 24, 25] > 0).all()
    np.testing.assert_allclose(y[:, 24, 23], y[:, 24, 25], rtol=1e-4)     # left = right
    np.testing.assert_allclose(y[:, 23, 24], y[:, 24, 23], rtol=1e-4)     # up = left
    assert (y[:, 24, 28:] == 0).all()                                     # kernel radius 3 px


def test_low_res_removes_the_finest_detail():
    x = np.zeros((8, 48, 48, 1))
    x[:, :, ::2] = 255.0                                                  # 1-px stripes
    y = _run(x, low_res=0.5, degrade_p=1.0)
    assert y.shape == x.shape
    assert (y.std(axis=(1, 2, 3)) < 0.5 * x.std(axis=(1, 2, 3))).all()


def test_noise_std_stays_under_its_bound():
    x = np.full((16, 48, 48, 1), 128.0)
    y = _run(x, noise=8.0, degrade_p=1.0)
    std = y.std(axis=(1, 2, 3))
    assert (std > 0).all() and (std < 8.0 * 1.1).all()
    assert abs(y.mean() - 128.0) < 1.0


def test_each_image_is_hit_with_probability_p():
    x = np.full((400, 8, 8, 1), 128.0)
    hit = _run(x, noise=8.0, degrade_p=0.25).std(axis=(1, 2, 3)) > 0
    assert 0.15 < hit.mean() < 0.35


def test_make_dataset_applies_the_degradations_within_0_255():
    x = np.random.default_rng(1).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    aug = dataclasses.replace(Augment.none(), blur=1.0, low_res=0.5, noise=8.0, degrade_p=1.0)
    xb, yb = next(iter(make_dataset(x, np.zeros(16, int), batch_size=16, augment=aug)))
    xb = xb.numpy()
    assert xb.shape == (16, 48, 48, 1) and xb.min() >= 0 and xb.max() <= 255
    assert not np.allclose(xb[..., 0], x)


def test_experiment_script_refuses_a_bad_degradation(tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz"), "--low-res", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: low_res must be in [0, 1), got 1.5"


def test_scaled_augment_shrinks_the_ranges_and_keeps_flip_and_degradations():
    a = Augment(blur=1.0).scaled(0.5)
    assert (a.shift, a.rotation, a.zoom, a.brightness, a.contrast) == (0.05, 5.0, 0.05, 0.1, 0.1)
    assert a.flip and a.blur == 1.0 and a.degrade_p == 0.25
    assert Augment().scaled(0.0) == Augment(shift=0.0, rotation=0.0, zoom=0.0, brightness=0.0, contrast=0.0)
    with pytest.raises(ValueError, match="the augmentation scale must be >= 0, got -1"):
        Augment().scaled(-1)


@pytest.mark.parametrize("argv, message", [
    (["--view-augment", "0.5"], "error: --view-augment needs --teacher-views or --framed-views"),
    (["--teacher", "ensemble", "--teacher-views", "1", "--view-augment", "-1"],
     "error: the augmentation scale must be >= 0, got -1.0"),
])
def test_experiment_script_refuses_a_bad_view_augment(argv, message, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz")] + argv) == 2
    assert capsys.readouterr().err.strip() == message


def test_the_degraded_images_change_from_batch_to_batch():
    x = np.full((32, 8, 8), 128, np.uint8)
    aug = dataclasses.replace(Augment.none(), noise=8.0, degrade_p=0.5)
    it = iter(make_dataset(x, np.zeros(32, int), batch_size=32, augment=aug, repeat=True))
    masks = [next(it)[0].numpy().std(axis=(1, 2, 3)) > 0 for _ in range(3)]
    assert not (np.array_equal(masks[0], masks[1]) and np.array_equal(masks[1], masks[2]))
