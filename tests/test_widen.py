"""fer_hybrid.cnn.widen: Net2WiderNet widening of a vggbn keeps its function and its layers."""
import numpy as np
import pytest

from fer_hybrid.cnn.vggbn import build_vggbn
from fer_hybrid.cnn.widen import vggbn_widths, widen_vggbn


def _trained_like(widths=(4, 8), seed=0):
    """A small vggbn whose BatchNorm layers carry non-trivial statistics (as a trained one does)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_vggbn(widths=widths, dense=6)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if "bn" in layer.name:
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def _faces(n=6, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


def test_widened_network_computes_the_same_function():
    model = _trained_like()
    wide = widen_vggbn(model, (7, 13), seed=3)
    assert vggbn_widths(model) == (4, 8) and vggbn_widths(wide) == (7, 13)
    assert wide.get_layer("block1_conv2").get_weights()[0].shape == (3, 3, 7, 7)
    assert wide.get_layer("head_fc").get_weights()[0].shape == (13, 6)
    assert [layer.name for layer in wide.layers] == [layer.name for layer in model.layers]
    x = _faces()
    np.testing.assert_allclose(wide.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert wide.count_params() > model.count_params()


def test_noise_changes_only_the_added_channels_and_the_function_slightly():
    model = _trained_like()
    wide = widen_vggbn(model, (7, 13), seed=3, noise=0.05)
    exact = widen_vggbn(model, (7, 13), seed=3)
    k, k0 = (m.get_layer("block1_conv1").get_weights()[0] for m in (wide, exact))
    np.testing.assert_array_equal(k[..., :4], k0[..., :4])
    assert not np.allclose(k[..., 4:], k0[..., 4:])
    x = _faces()
    diff = np.abs(wide.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    assert 0 < diff < 0.1


def test_same_width_is_a_copy_and_seed_fixes_the_copies():
    model = _trained_like()
    same = widen_vggbn(model, (4, 8))
    for a, b in zip(same.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    w1, w2 = widen_vggbn(model, (6, 9), seed=5), widen_vggbn(model, (6, 9), seed=5)
    for a, b in zip(w1.get_weights(), w2.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("widths, message", [((3, 8), "widths >= the model's"), ((8,), "blocks")])
def test_bad_widths_raise_value_error(widths, message):
    with pytest.raises(ValueError, match=message):
        widen_vggbn(_trained_like(), widths)


def test_a_model_that_is_not_vggbn_is_refused():
    import keras

    inputs = keras.Input((4,))
    other = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    with pytest.raises(ValueError, match="not a vggbn"):
        widen_vggbn(other, (8, 16))


def test_training_build_widens_a_narrow_warm_start(tmp_path):
    """TrainConfig(widen=True) starts the wider network as the narrow one's function."""
    from fer_hybrid.cnn.train import TrainConfig, build, save_model

    narrow = _trained_like(widths=(4, 8, 8, 8))
    path = save_model(narrow, tmp_path / "narrow.keras")
    cfg = TrainConfig(backbone="vggbn", weights=str(path), precision="float32", widen=True,
                      model_kwargs={"widths": [6, 8, 12, 16], "dense": 6})
    wide = build(cfg, 5)
    assert vggbn_widths(wide) == (6, 8, 12, 16)
    x = _faces()
    np.testing.assert_allclose(wide.predict(x, verbose=0), narrow.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="does not fit the vggbn backbone"):  # the same file, not widened
        build(TrainConfig(backbone="vggbn", weights=str(path), model_kwargs=cfg.model_kwargs), 5)


def test_cnn_transfer_widen_trains_a_wider_student_and_reports_it(sample_tar, tmp_path, monkeypatch, capsys):
    import sys
    from pathlib import Path

    from fer_hybrid.cnn.train import save_model
    from fer_hybrid.keras_io import load_keras_model
    from fer_hybrid.reports import read_report

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import cnn_transfer

    import keras

    keras.utils.set_random_seed(0)
    narrow = save_model(build_vggbn(widths=(4, 8, 8, 8)), tmp_path / "narrow.keras")
    monkeypatch.setattr(sys, "argv", ["experiments/cnn_transfer.py"])
    base = ["--data", str(sample_tar), "--epochs", "1", "--batch-size", "16", "--precision", "float32",
            "--reports", str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt")]
    assert cnn_transfer.main(base + ["--weights", str(narrow), "--widths", "6-8-12-16", "--widen",
                                     "--name", "wide"]) == 0
    report = read_report(tmp_path / "reports" / "wide" / "report.json")
    assert report["config"]["widen"] is True and report["config"]["model_kwargs"] == {"widths": [6, 8, 12, 16]}
    assert "widened to 6-8-12-16 keeping its function" in report["notes"] and "noise 0.01" in report["notes"]
    assert vggbn_widths(load_keras_model(tmp_path / "ckpt" / "wide" / "final.keras")) == (6, 8, 12, 16)
    capsys.readouterr()
    # a file wider than --widths cannot be widened: one line, exit 2
    assert cnn_transfer.main(base + ["--weights", str(narrow), "--widths", "4-4-8-8", "--widen",
                                     "--name", "narrower", "--no-resume"]) == 2
    assert "widening needs widths >=" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--widths", "64-x"], "--widths: widths must be positive integers"),
    (["--backbone", "baseline", "--widths", "8-16"], "--widths applies to the vggbn backbone"),
    (["--widen", "--widths", "8-16"], "--widen needs --widths, a .keras file"),
    (["--widen", "--weights", "models/vggbn.keras"], "--widen needs --widths"),
    (["--widen", "--widths", "8-16", "--weights", "x.keras", "--widen-noise", "-1"], "--widen-noise >= 0"),
])
def test_cnn_transfer_width_arguments_are_checked_before_any_work(argv, message, tmp_path, capsys):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import cnn_transfer

    assert cnn_transfer.main(["--data", str(tmp_path / "nope.tar.gz")] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "FER2013 source not found" not in err
