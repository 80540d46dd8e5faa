"""fer_hybrid.cnn.pair: partner scoring on val and the two-network graph."""
import numpy as np
import pytest

from fer_hybrid.cnn.pair import average_networks, pair_trail
from fer_hybrid.cnn.vggbn import build_vggbn


def test_pair_trail_scores_the_uniform_mean_best_first():
    y = np.array([0, 1, 1])
    base = np.array([[0.6, 0.4], [0.6, 0.4], [0.2, 0.8]])
    partners = {"weak": np.array([[0.9, 0.1], [0.7, 0.3], [0.5, 0.5]]),      # mean: 0, 0, 1 -> 2/3
                "fixer": np.array([[0.7, 0.3], [0.1, 0.9], [0.4, 0.6]])}     # mean: 0, 1, 1 -> 3/3
    trail = pair_trail(base, partners, y)
    assert [r["partner"] for r in trail] == ["fixer", "weak"]
    assert trail[0]["accuracy"] == 1.0 and trail[1]["accuracy"] == pytest.approx(2 / 3)


def test_pair_trail_errors():
    with pytest.raises(ValueError, match="at least one partner"):
        pair_trail(np.zeros((2, 2)), {}, np.zeros(2, int))
    with pytest.raises(ValueError, match="partner 'p'"):
        pair_trail(np.zeros((2, 2)), {"p": np.zeros((3, 2))}, np.zeros(2, int))


def test_average_networks_is_the_mean_of_the_members_and_survives_a_save(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    a, b = build_vggbn(widths=(4, 8), dense=6), build_vggbn(widths=(4, 8), dense=6)
    pair = average_networks([a, b], name="pair")
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    expected = (a.predict(x, verbose=0) + b.predict(x, verbose=0)) / 2
    np.testing.assert_allclose(pair.predict(x, verbose=0), expected, atol=1e-6)
    assert [layer.name for layer in pair.layers if isinstance(layer, keras.Model)] == ["member0", "member1"]
    pair.save(tmp_path / "pair.keras")
    again = keras.models.load_model(tmp_path / "pair.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, atol=1e-6)


def test_average_networks_errors():
    net = build_vggbn(widths=(4, 8), dense=6)
    with pytest.raises(ValueError, match="at least two"):
        average_networks([net])
    with pytest.raises(ValueError, match="differ in input/output shapes"):
        average_networks([net, build_vggbn(widths=(4, 8), dense=6, num_classes=3)])


def _script():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import cnn_pair

    return cnn_pair


def test_cnn_pair_script_chooses_a_partner_on_val_and_reports_the_pair_as_run(sample_tar, tmp_path):
    from fer_hybrid.keras_io import load_keras_model
    from fer_hybrid.reports import read_report

    code = _script().main(["--base", "vggbn-kdv-soup", "--partners", "vggbn,vggbn-s7", "--data", str(sample_tar),
                           "--name", "tiny-pair", "--reports", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "c")])
    assert code == 0
    report = read_report(tmp_path / "r" / "tiny-pair" / "report.json")
    pair = report["pair"]
    assert pair["base"] == "vggbn-kdv-soup" and pair["chosen"] in ("vggbn", "vggbn-s7")
    assert [r["partner"] for r in pair["trail"]][0] == pair["chosen"] and len(pair["trail"]) == 2
    assert [n["name"] for n in pair["networks"]] == ["vggbn-kdv-soup", "vggbn", "vggbn-s7"]
    assert report["tta"] is False and report["evaluated_as_run"] is True
    assert report["metrics"]["val"]["accuracy"] == pytest.approx(
        next(r["accuracy"] for r in pair["trail"] if r["partner"] == pair["chosen"]))
    model = load_keras_model(tmp_path / "c" / "tiny-pair" / "pair.keras")
    assert [layer.name for layer in model.layers][-1] == "mean"


@pytest.mark.parametrize("argv, message", [
    (["--base", "vggbn", "--partners", "vggbn"], "none of them the --base"),
    (["--base", "vggbn", "--partners", "vggbn-s7,vggbn-s7"], "distinct"),
    (["--base", "vggbn", "--partners", "no-such-model"], "no-such-model"),
])
def test_cnn_pair_script_bad_names_are_one_line_exit_2(argv, message, sample_tar, tmp_path, capsys):
    assert _script().main(argv + ["--data", str(sample_tar), "--reports", str(tmp_path / "r"),
                                  "--checkpoints", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()
