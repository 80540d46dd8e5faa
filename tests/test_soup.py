"""Model soups (fer_hybrid.cnn.soup), the soup experiment's pieces (evaluation.soup_report) and the script."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from fer_hybrid.cnn.soup import average_weights, check_compatible, greedy_soup
from fer_hybrid.evaluation.soup_report import ingredient_file
from fer_hybrid.reports import artifact_info, reported_artifact

ROOT = Path(__file__).resolve().parents[1]


def tiny(kernel: float, units: int = 3, name: str = "tiny"):
    """Dense(units) + BatchNorm on 2 inputs, every kernel entry = ``kernel``, BN moving mean = ``kernel``."""
    inp = keras.Input((2,))
    out = keras.layers.BatchNormalization(name="bn")(keras.layers.Dense(units, name="dense")(inp))
    m = keras.Model(inp, out, name=name)
    dense, bn = m.get_layer("dense"), m.get_layer("bn")
    dense.set_weights([np.full((2, units), kernel, np.float32), np.zeros(units, np.float32)])
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, np.full_like(mean, kernel), var])
    return m


def kernel_mean(m) -> float:
    return float(m.get_layer("dense").get_weights()[0].mean())


def test_average_weights_is_the_mean_of_every_float_weight_batch_norm_statistics_included():
    a, b = tiny(1.0), tiny(3.0)
    soup = average_weights([a, b])
    assert soup is not a and soup is not b
    np.testing.assert_allclose(soup.get_layer("dense").get_weights()[0], 2.0)
    np.testing.assert_allclose(soup.get_layer("bn").get_weights()[2], 2.0)   # moving mean averaged
    assert kernel_mean(a) == 1.0 and kernel_mean(b) == 3.0                    # ingredients untouched
    x = np.ones((4, 2), np.float32)
    assert soup.predict(x, verbose=0).shape == (4, 3)


def test_coefficients_weight_the_average_and_are_checked():
    a, b = tiny(1.0), tiny(3.0)
    assert kernel_mean(average_weights([a, b], [1, 0])) == pytest.approx(1.0)
    assert kernel_mean(average_weights([a, b], [1, 3])) == pytest.approx(2.5)
    for bad in ([1], [-1, 2], [0, 0]):
        with pytest.raises(ValueError, match="non-negative"):
            average_weights([a, b], bad)


def test_ingredients_of_different_architectures_are_refused():
    with pytest.raises(ValueError, match="different architecture"):
        check_compatible([tiny(1.0), tiny(1.0, units=4, name="wider")])
    with pytest.raises(ValueError, match="at least one"):
        average_weights([])


def test_greedy_soup_adds_ingredients_by_score_while_the_score_holds():
    models = [tiny(10.0), tiny(1.0), tiny(3.0)]          # own scores -8, -1, -1 against the target 2

    def score(m):
        return -abs(kernel_mean(m) - 2.0)

    r = greedy_soup(models, score)
    assert r.scores == [-8.0, -1.0, -1.0]
    assert r.chosen == [1, 2]                            # 1 first (tie broken by order), 2 joins (soup = 2.0)
    assert [(t["ingredient"], t["kept"]) for t in r.trail] == [(1, True), (2, True), (0, False)]
    assert r.score == pytest.approx(0.0)
    assert kernel_mean(r.model) == pytest.approx(2.0)


def test_greedy_soup_of_one_good_ingredient_is_that_ingredient():
    best = tiny(2.0)
    r = greedy_soup([best, tiny(50.0)], lambda m: -abs(kernel_mean(m) - 2.0))
    assert r.chosen == [0] and r.model is best
    assert r.trail[1]["kept"] is False


def test_reported_artifact_checks_the_file_the_report_evaluated(tmp_path):
    f = tmp_path / "ckpt" / "final.keras"
    f.parent.mkdir()
    f.write_bytes(b"weights")
    report = {"name": "r", "artifact": artifact_info(f, tmp_path)}
    assert reported_artifact(report, tmp_path) == tmp_path / "ckpt" / "final.keras"
    f.write_bytes(b"changed")
    with pytest.raises(ValueError, match="sha256 differs"):
        reported_artifact(report, tmp_path)
    with pytest.raises(ValueError, match="names no artifact"):
        reported_artifact({"name": "r", "artifact": None}, tmp_path)


def test_ingredient_file_takes_registered_keras_cnns_and_refuses_the_rest(tmp_path):
    assert ingredient_file("vggbn", ROOT).name == "vggbn.keras"
    with pytest.raises(ValueError, match="not a Keras network"):
        ingredient_file("landmarks", ROOT)
    with pytest.raises(ValueError, match="neither a registered model nor a report"):
        ingredient_file("no-such-model", tmp_path)


def _script():
    spec = importlib.util.spec_from_file_location("_exp_model_soup", ROOT / "experiments" / "model_soup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("uniform", [False, True])
def test_model_soup_script_writes_the_report_of_what_it_chose(sample_tar, tmp_path, capsys, uniform):
    rc = _script().main(["--ingredients", "vggbn,vggbn-ft", "--name", "soup-test", "--data", str(sample_tar),
                         "--reports", str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt")]
                        + ["--uniform"] * uniform)
    assert rc == 0
    report = json.loads((tmp_path / "reports" / "soup-test" / "report.json").read_text())
    soup = report["soup"]
    assert [i["name"] for i in soup["ingredients"]] == ["vggbn", "vggbn-ft"]
    assert set(soup["chosen"]) <= {"vggbn", "vggbn-ft"} and soup["chosen"]
    if uniform:  # every ingredient kept: nothing was chosen on val
        assert len(soup["chosen"]) == 2 and report["notes"].startswith(
            "uniform model soup of all 2 ingredients (val only scores the trail); one network")
    else:
        assert report["notes"].startswith(f"greedy model soup of {len(soup['chosen'])} of 2 ingredients, chosen on val")
    assert soup["val_accuracy"] == pytest.approx(report["metrics"]["val"]["accuracy"])  # same model, same TTA
    assert report["metrics"]["val"]["n"] == 15 and report["tta"] is True
    assert (tmp_path / "ckpt" / "soup-test" / "soup.keras").exists()


def test_model_soup_script_fails_in_one_line_on_an_unknown_ingredient(sample_tar, tmp_path, capsys):
    rc = _script().main(["--ingredients", "vggbn,nope", "--data", str(sample_tar),
                         "--reports", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "nope" in err[0]
    assert not (tmp_path / "r").exists()


def test_uniform_soup_keeps_every_ingredient_and_scores_each_step():
    models = [tiny(10.0), tiny(1.0), tiny(3.0)]
    r = greedy_soup(models, lambda m: -abs(kernel_mean(m) - 2.0), keep_all=True)
    assert r.chosen == [1, 2, 0] and all(t["kept"] for t in r.trail)
    assert kernel_mean(r.model) == pytest.approx(14.0 / 3)   # the mean of all three, though it scores worse
    assert r.score == pytest.approx(-abs(14.0 / 3 - 2.0))


def _flip_files(tmp_path, kernels_scale=(1.0, 3.0)):
    """Two flip-in-graph .keras files of the tiny CNN, with its weights scaled by each factor."""
    from fer_hybrid.cnn.export import with_flip_tta
    from fer_hybrid.predictors import load_keras_model

    files = []
    for i, k in enumerate(kernels_scale):
        net = load_keras_model(ROOT / "tests" / "data" / "tiny_cnn.keras")
        net.set_weights([w * k if np.issubdtype(w.dtype, np.floating) else w for w in net.get_weights()])
        files.append(tmp_path / f"flip{i}.keras")
        with_flip_tta(net, f"flip{i}").save(files[-1])
    return files


def test_flip_in_graph_ingredients_are_unwrapped_to_the_network_inside(tmp_path):
    from fer_hybrid.cnn.export import is_flip_tta
    from fer_hybrid.evaluation.soup_report import load_ingredients
    from fer_hybrid.predictors import load_keras_model

    files = _flip_files(tmp_path)
    nets, flip_in_graph = load_ingredients(files)
    assert flip_in_graph and not any(is_flip_tta(n) for n in nets)
    soup = average_weights(nets)
    inner0 = load_keras_model(ROOT / "tests" / "data" / "tiny_cnn.keras").get_weights()
    floats = [i for i, w in enumerate(inner0) if np.issubdtype(w.dtype, np.floating)]
    assert np.allclose(soup.get_weights()[floats[0]], inner0[floats[0]] * 2.0)   # mean of x1 and x3

    plain = tmp_path / "plain.keras"
    load_keras_model(ROOT / "tests" / "data" / "tiny_cnn.keras").save(plain)
    nets, flip_in_graph = load_ingredients([plain, plain])
    assert not flip_in_graph
    with pytest.raises(ValueError, match="all carry the flip TTA in their graph or none: flip0.keras"):
        load_ingredients([files[0], plain])


def test_model_soup_script_ships_a_flip_in_graph_soup_evaluated_as_run(sample_tar, tmp_path, monkeypatch):
    """vggface ships with the flip in its graph: its soup keeps it there, is scored as run and says so."""
    from fer_hybrid.cnn.export import is_flip_tta
    from fer_hybrid.evaluation import soup_report
    from fer_hybrid.predictors import load_keras_model

    files = dict(zip(["a", "b"], _flip_files(tmp_path)))
    monkeypatch.setattr(soup_report, "ingredient_file", lambda name, root: files[name])
    rc = _script().main(["--ingredients", "a,b", "--uniform", "--name", "flip-soup", "--data", str(sample_tar),
                         "--reports", str(tmp_path / "reports"), "--checkpoints", str(tmp_path / "ckpt")])
    assert rc == 0
    report = json.loads((tmp_path / "reports" / "flip-soup" / "report.json").read_text())
    assert report["tta"] == "flip (in the shipped graph)" and report["evaluated_as_run"] is True
    assert report["notes"].endswith("metrics with the flip TTA in the shipped graph")
    shipped = load_keras_model(tmp_path / "ckpt" / "flip-soup" / "soup.keras")
    assert is_flip_tta(shipped)
    x = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    assert np.allclose(shipped(x), shipped(x[:, :, ::-1]), atol=1e-6)   # the mirror gives the same answer


def test_model_soup_script_refuses_ingredients_with_and_without_the_flip_in_one_line(sample_tar, tmp_path,
                                                                                      monkeypatch, capsys):
    from fer_hybrid.evaluation import soup_report
    from fer_hybrid.predictors import load_keras_model

    plain = tmp_path / "plain.keras"
    load_keras_model(ROOT / "tests" / "data" / "tiny_cnn.keras").save(plain)
    files = {"a": _flip_files(tmp_path)[0], "b": plain}
    monkeypatch.setattr(soup_report, "ingredient_file", lambda name, root: files[name])
    rc = _script().main(["--ingredients", "a,b", "--data", str(sample_tar),
                         "--reports", str(tmp_path / "r"), "--checkpoints", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "flip TTA in their graph or none" in err[0]
    assert not (tmp_path / "r").exists()
