"""Hybrid track: our CNN fused with the landmark ensemble, and an ensemble of our CNNs.

Method
1. Data. FER2013 restricted to the five study emotions. Training fits, PublicTest ("val") chooses every
   setting (TTA policy, fusion weight, head, which fusion), PrivateTest ("test") is only reported.
2. Parts, computed once and cached (.npz in the fer_hybrid cache, keyed by the model files' sha256):
   - CNN (``--cnn``, default vggbn): softmax (n, 5) and the penultimate embedding (``head_relu``, 256-d for
     vggbn) of every image under each test-time augmentation policy of ``--tta`` (fer_hybrid.cnn.tta;
     default none, flip and flip-scale: the face, + its mirror, + both zoomed by 1.1 and 1/1.1), averaged
     over the policy's views; each distinct view is predicted once. The policy is chosen on val.
   - Landmark model (models/landmarks/ensemble.json): probabilities (n, 5) exactly as the shipped landmark
     predictor computes them (geometry + appearance at the landmarks, mirror TTA), from dlib's 68 points
     found by the model's own landmark method (cached extraction), and the geometric features (for feature
     fusion, as HybridPredictor computes them). Faces without landmarks give NaN and fall back to the CNN.
3. Fusions (fer_hybrid.fusion):
   a. late: w * p_cnn + (1 - w) * p_landmarks, w on a 0.05 grid maximising val accuracy;
   b. stacking: logistic regression on [log p_cnn, log p_landmarks]. Both base models were trained on all
      of train, so their train probabilities are over-confident; the stacker is fit on val and its C chosen
      and its accuracy estimated by 5-fold cross-validation inside val (the out-of-fold accuracy is what
      enters the choice), then refit on all of val;
   c. feature: standardised [CNN embedding, landmark features] -> logistic regression (C grid) or
      HistGradientBoosting, trained on train, chosen on val.
4. Choice. The variant with the best val accuracy is shipped to models/hybrid/ only if it beats its own CNN
   part on val (else nothing is shipped and the command exits 1); every report carries the CNN part's
   accuracy and the fusion's gain over it on val and test. It goes to models/hybrid/ (descriptor naming the CNN
   and landmark files + the fusion head) and recorded in the manifest; every variant gets a report
   (kind "hybrid") in experiments/reports/hybrid-<variant>/ with its own loadable descriptor.
5. CNN ensemble (``--cnn-ensemble A,B``): a weighted average of our CNNs — members and weights by greedy
   ensemble selection with replacement on val accuracy (Caruana et al. 2004), the TTA policy chosen on val — gets its own
   report (kind "cnn"), and the fusions are repeated on top of it; it replaces the single CNN in the shipped
   hybrid only if that wins on val.
6. FER+ cross-check. Every report also carries test accuracy against the FER+ majority label
   (metrics.test_ferplus) when ../shared/data/ferplus is present.

Run on an otherwise idle machine: the reports include batch-1 latency.

    python experiments/hybrid.py [--cnn vggbn] [--cnn-ensemble vggbn,vggbn_s2] [--tta none,flip,flip-scale]
                                 [--cnn-onnx NAME] [--data PATH] [--no-ship]

With ``--cnn-onnx NAME`` (the ONNX export of ``--cnn`` with its TTA in the graph, experiments/export_onnx.py)
the shipped hybrid runs that twin instead of Keras when its fusion needs no CNN embedding: the same
probabilities within 1e-4 and no TensorFlow at start-up; verify re-evaluates exactly that.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "experiments" / "reports"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013_images.tar.gz"
SPLITS = ("train", "val", "test")
EXIT_MISSING = 2


class MissingModel(Exception):
    """A model the experiment needs is not trained yet (message names the command)."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cnn", default="vggbn", help="CNN name (models/NAME.keras or experiments/checkpoints/NAME/"
                                                  "final.keras) or a .keras path")
    ap.add_argument("--cnn-ensemble", default=None, help="comma-separated CNN names for the ensemble report")
    ap.add_argument("--data", default=None, help="FER2013 source (default $FER2013_PATH or ../shared/...)")
    ap.add_argument("--models", default=None, help="models folder (default fer_hybrid.artifacts.models_dir())")
    ap.add_argument("--reports", default=str(REPORTS))
    ap.add_argument("--heads", default="logreg,hgb", help="feature-fusion heads to try (logreg, hgb)")
    ap.add_argument("--tta", default="none,flip,flip-scale",
                    help="CNN test-time augmentation policies to choose from on val (fer_hybrid.cnn.tta)")
    ap.add_argument("--cnn-onnx", default=None,
                    help="registered ONNX twin of --cnn (experiments/export_onnx.py) that the shipped hybrid runs "
                         "instead of Keras when its fusion needs no CNN embedding")
    ap.add_argument("--no-ship", action="store_true", help="write reports only; do not touch models/")
    ap.add_argument("--n-jobs", type=int, default=2)
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def cnn_file(name: str, models_root: Path) -> Path:
    """The .keras file for a CNN name; MissingModel naming the training command when absent."""
    from fer_hybrid.predictors import model_spec

    if name.endswith(".keras"):
        p = Path(name)
        if p.exists():
            return p
        raise MissingModel(f"CNN file {p} not found")
    for p in (models_root / f"{name}.keras", ROOT / "experiments" / "checkpoints" / name / "final.keras"):
        if p.exists():
            return p
    try:
        cmd = model_spec(name).train_command + " --ship"
    except ValueError:
        cmd = f"python experiments/cnn_transfer.py --backbone <backbone> --name {name} --ship"
    raise MissingModel(f"CNN {name!r} is not trained yet (no {models_root / (name + '.keras')}); train it with `{cmd}`")


def onnx_twin(args, members: list[str], models_root: Path) -> Path | None:
    """The ``--cnn-onnx`` file when it is the ONNX export of the single CNN the hybrid uses and its report
    found it equal to Keras within its bar; MissingModel otherwise."""
    if not args.cnn_onnx:
        return None
    from fer_hybrid import artifacts

    entry = artifacts.read_manifest(models_root)["models"].get(args.cnn_onnx)
    report = json.loads((ROOT / entry["report"]).read_text()) if entry and entry.get("report") else {}
    if members != [args.cnn] or report.get("exported_from") != args.cnn or not report.get("onnx", {}).get("agrees"):
        raise MissingModel(f"--cnn-onnx {args.cnn_onnx} is not an agreeing ONNX export of {args.cnn} "
                           f"(make it with `python experiments/export_onnx.py --model {args.cnn} --ship`)")
    return models_root / entry["file"]


def landmark_file(models_root: Path) -> Path:
    p = models_root / "landmarks" / "ensemble.json"
    if not p.exists():
        raise MissingModel(f"the landmark ensemble is not trained yet (no {p}); train it with "
                           "`python experiments/landmarks.py`")
    return p


def cnn_parts(path: Path, data, policies: list[str], progress=True) -> dict:
    """{f"{split}_{p|e}@{policy}": array}: softmax (n, 5) and embedding (n, d) of each image averaged over
    the views of each TTA policy (every distinct view predicted once)."""
    import hashlib

    from tqdm.auto import tqdm

    from fer_hybrid.cnn.tta import tta_policy, tta_views
    from fer_hybrid.data import cache_dir
    from fer_hybrid.hybrid import CNNEnsemblePredictor
    from fer_hybrid.npz_cache import cached_arrays
    from fer_hybrid.predictors import to_gray_faces
    from fer_hybrid.safe_io import file_sha256

    distinct = list(dict.fromkeys(v for p in policies for v in tta_policy(p)))
    index = {v: i for i, v in enumerate(distinct)}

    def compute():
        member = CNNEnsemblePredictor.from_files([path]).members[0]
        out = {}
        for s in SPLITS:
            x = to_gray_faces(data.split(s).x, member.input_hw)
            ps, es = [], []   # per chunk: (views, m, 5), (views, m, d)
            for i in tqdm(range(0, len(x), 1024), desc=f"{path.stem} {s} ({len(distinct)} views)", disable=not progress):
                outs = [member(v[..., None]) for v in tta_views(x[i:i + 1024], distinct)]
                ps.append(np.stack([o[0] for o in outs]))
                es.append(np.stack([o[1] for o in outs]).astype(np.float32))
            p_all, e_all = np.concatenate(ps, axis=1), np.concatenate(es, axis=1)
            for pol in policies:
                rows = [index[v] for v in tta_policy(pol)]
                out[f"{s}_p@{pol}"], out[f"{s}_e@{pol}"] = p_all[rows].mean(0), e_all[rows].mean(0)
        return out

    key = hashlib.sha256(",".join(policies).encode()).hexdigest()[:8]
    return cached_arrays(cache_dir() / f"hybrid-cnn-{file_sha256(path)[:20]}-{data.sha256[:12]}-tta{key}.npz", compute)


def landmark_parts(lm_json: Path, source, data, n_jobs: int) -> dict:
    """{f"{split}_p": (n, 5) landmark probabilities, f"{split}_f": (n, f) features} (NaN rows: no landmarks)."""
    from fer_hybrid.data import cache_dir
    from fer_hybrid.hybrid import landmark_features
    from fer_hybrid.npz_cache import cached_arrays
    from fer_hybrid.landmarks.extract import extract_fer2013
    from fer_hybrid.landmarks.predictor import load_landmark_predictor
    from fer_hybrid.safe_io import file_sha256

    lm = load_landmark_predictor(lm_json)

    def compute():
        ext = extract_fer2013(source, lm.method, n_jobs=n_jobs)  # what LandmarkPredictor does at inference
        out = {}
        for s in SPLITS:
            pts = ext.points_for(data.split(s).keys)
            # probabilities exactly as the landmark predictor computes them (geometry + appearance at the
            # landmarks, mirror TTA); feature fusion uses the geometric features (what HybridPredictor computes)
            out[f"{s}_p"] = lm.predict_proba_points(data.split(s).x, pts)
            out[f"{s}_f"] = landmark_features(lm, pts).astype(np.float32)
        return out

    return lm, cached_arrays(cache_dir() / f"hybrid-lm-{file_sha256(lm_json)[:20]}-{data.sha256[:12]}.npz", compute)


def combine_cnns(parts: list[dict], tta: str, weights=None) -> dict:
    """{split: (proba (n, 5), embedding (n, sum d))} of the (weighted) average of CNNs under TTA policy ``tta``."""
    out = {}
    for s in SPLITS:
        ps = [q[f"{s}_p@{tta}"] for q in parts]
        es = [q[f"{s}_e@{tta}"] for q in parts]
        out[s] = (np.average(ps, axis=0, weights=weights), np.concatenate(es, axis=1).astype(np.float64))
    return out


def select_members(members: list[str], parts: dict, tta: str, y_val: np.ndarray) -> dict[str, float]:
    """{member: weight > 0} by greedy ensemble selection on val (fer_hybrid.fusion.ensemble_selection)."""
    vals = [combine_cnns([parts[m]], tta)["val"][0] for m in members]
    from fer_hybrid import fusion as fz

    w = fz.ensemble_selection(vals, y_val)
    return {m: float(x) for m, x in zip(members, w) if x > 0}


def val_accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float((p.argmax(1) == y).mean())


# ---------------------------------------------------------------------------------------------
# Fusions
# ---------------------------------------------------------------------------------------------
def fusion_inputs(cnn: dict, lm: dict) -> dict:
    return {s: {"cnn_proba": cnn[s][0], "cnn_embedding": cnn[s][1], "lm_proba": lm[f"{s}_p"],
                "lm_features": lm[f"{s}_f"].astype(np.float64)} for s in SPLITS}


def fit_fusions(X: dict, data, heads: list[str], n_jobs: int) -> dict:
    """{variant: fitted fuser}; each has ``val_accuracy_`` (stacking: out-of-fold on val)."""
    from fer_hybrid import fusion as fz

    y, yv = data.train.y, data.val.y
    out = {"late": fz.LateFusion().fit(X["val"], yv), "stacking": fz.StackingFusion().fit(X["val"], yv)}
    for head in heads:
        out[f"feature-{head}"] = fz.FeatureFusion(head=head, n_jobs=n_jobs).fit(X["train"], y, X["val"], yv,
                                                                                progress=True)
    return out


def head_params(fuser) -> int:
    m = getattr(fuser, "model_", None)
    if m is None:
        return 1
    est = m.steps[-1][1] if hasattr(m, "steps") else m
    if hasattr(est, "coef_"):
        return int(est.coef_.size + est.intercept_.size)
    return int(sum(t.get_n_leaf_nodes() for ts in getattr(est, "_predictors", []) for t in ts))


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------
def split_metrics(proba: dict, data, ferplus_labels) -> dict:
    from fer_hybrid.evaluate import metrics_from_proba
    from fer_hybrid.ferplus import ferplus_metrics, summary

    m = {s: metrics_from_proba(data.split(s).y, proba[s], data.classes) for s in SPLITS}
    if ferplus_labels is not None:
        m["test_ferplus"] = summary(ferplus_metrics(proba["test"], data.test, ferplus_labels))
    return m


def write(out_root: Path, name: str, kind: str, metrics: dict, predictor, artifact: Path | None, data, weights,
          command: str, **extra) -> tuple[Path, dict]:
    """Build and write one report into ``out_root/name``; prints its one-line summary."""
    from fer_hybrid.evaluate import ms_per_face
    from fer_hybrid.reports import artifact_info, make_report, write_report

    report = make_report(name=name, kind=kind, weights=weights, metrics=metrics, command=command,
                         ms_per_face=ms_per_face(predictor.predict_proba, data.test.x[:1], repeats=20),
                         params=int(predictor.count_params()) + int(extra.pop("head_params", 0)),
                         artifact=artifact_info(artifact, ROOT) if artifact else None,
                         data={"source": Path(data.source).name, "sha256": data.sha256}, **extra)
    path = write_report(report, out_root / name)
    t = metrics["test"]
    fp = metrics.get("test_ferplus", {}).get("accuracy")
    print(f"{name:32s} val {metrics['val']['accuracy']:.4f} test {t['accuracy']:.4f} macro-F1 {t['macro_f1']:.4f}"
          + (f" FER+ {fp:.4f}" if fp is not None else ""))
    return path, report


def run(args: argparse.Namespace) -> int:
    from fer_hybrid import artifacts, ferplus
    from fer_hybrid import fusion as fz
    from fer_hybrid.data import load_fer2013, resolve_source
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.hybrid import CNNEnsemblePredictor, HybridPredictor

    out_root = Path(args.reports)
    command = command_line()
    models_root = Path(args.models) if args.models else artifacts.models_dir()
    names = [args.cnn] + [n for n in (args.cnn_ensemble.split(",") if args.cnn_ensemble else []) if n != args.cnn]
    files = {n: cnn_file(n, models_root) for n in names}
    lm_json = landmark_file(models_root)
    heads = [h for h in args.heads.split(",") if h]
    weights = artifacts.read_manifest(models_root).get("models", {}).get(args.cnn, {}).get("weights")

    # 1. data (+ FER+ labels for the cross-check when present)
    source = resolve_source(args.data or os.environ.get("FER2013_PATH") or DEFAULT_DATA)
    data = load_fer2013(source)
    fp_labels = ferplus.ferplus_majority_labels() if ferplus.available() else None
    print(f"data: {source} train {len(data.train)} val {len(data.val)} test {len(data.test)}; "
          f"FER+ {'yes' if fp_labels is not None else 'absent (no test_ferplus)'}")

    # 2. parts, once
    policies = [t for t in args.tta.split(",") if t]
    parts = {n: cnn_parts(f, data, policies) for n, f in files.items()}
    lm, lmp = landmark_parts(lm_json, source, data, args.n_jobs)
    print(f"landmarks: {int(np.isnan(lmp['test_p']).any(1).sum())} test faces without landmarks")

    # 3-4. fusions on the single CNN (and on the ensemble), chosen on val
    stacks = {args.cnn: [args.cnn]}
    if args.cnn_ensemble:
        stacks["ens"] = [n for n in args.cnn_ensemble.split(",") if n]
    candidates = []  # (val accuracy, variant name, cnn names, tta policy, fuser, inputs, member weights)
    for key, members in stacks.items():
        options = []  # (val accuracy, tta policy, {member: weight}) for each policy
        for t in policies:
            chosen = select_members(members, parts, t, data.val.y) if key == "ens" else {members[0]: 1.0}
            p_val = combine_cnns([parts[m] for m in chosen], t, list(chosen.values()))["val"][0]
            options.append((val_accuracy(p_val, data.val.y), t, chosen))
        _, tta, chosen = max(options, key=lambda o: o[0])
        members, member_w = list(chosen), list(chosen.values())
        cnn = combine_cnns([parts[m] for m in members], tta, member_w)
        print(f"CNN {'+'.join(members)} weights {np.round(member_w, 3).tolist()} (TTA {tta}): "
              f"val {val_accuracy(cnn['val'][0], data.val.y):.4f}")
        X = fusion_inputs(cnn, lmp)
        for variant, fuser in fit_fusions(X, data, heads, args.n_jobs).items():
            name = f"hybrid-{variant}" if key == args.cnn else f"hybrid-ens-{variant}"
            candidates.append((fuser.val_accuracy_, name, members, tta, fuser, X, member_w, cnn))
        if key == "ens":
            write_ensemble_report(out_root, members, files, tta, cnn, data, fp_labels, weights, command, member_w)

    best = max(candidates, key=lambda c: c[0])
    for val_acc, name, members, tta, fuser, X, member_w, cnn in candidates:
        proba = {s: fz.with_fallback(fuser.predict_proba(X[s]), X[s]["cnn_proba"])[0] for s in SPLITS}
        metrics = split_metrics(proba, data, fp_labels)
        cnn_acc = {s: val_accuracy(cnn[s][0], data.split(s).y) for s in ("val", "test")}
        gain = {s: metrics[s]["accuracy"] - cnn_acc[s] for s in ("val", "test")}
        cnn_pred = CNNEnsemblePredictor.from_files([files[m] for m in members], tta=tta, weights=member_w)
        hp = HybridPredictor(cnn_pred, lm, fuser, landmark_model=lm_json)
        desc = hp.save(out_root / name / "hybrid.json", models_root=models_root,
                       extra={"val_accuracy": val_acc, "variant": name})
        fallback = {s: int((~np.isfinite(X[s]["lm_features"]).all(1) | ~np.isfinite(X[s]["lm_proba"]).all(1)).sum())
                    for s in SPLITS}
        write(out_root, name, "hybrid", metrics, hp, desc, data, weights, command, head_params=head_params(fuser),
              backbone=f"{'+'.join(members)} (weights {np.round(member_w, 3).tolist()}, TTA {tta}) "
                       f"+ landmark ensemble, {fuser.method} fusion",
              fusion=fuser.get_config(), selection_val_accuracy=val_acc,
              selection_note=("out-of-fold (5-fold CV inside val)" if fuser.method == "stacking" else
                              "val accuracy of the head trained on train" if fuser.method == "feature" else
                              "val accuracy at the weight chosen on val"),
              fallback_to_cnn=fallback, chosen=name == best[1], cnn_files=[files[m].name for m in members],
              cnn_part_accuracy=cnn_acc, gain_over_cnn=gain,
              labels_trained_on="FER2013 (original labels)",
              notes=f"CNN(s) {', '.join(members)}: initial weights {weights or 'none (random initialisation)'}; "
                    "fusion fit as documented in experiments/hybrid.py; every choice made on val only")

    # 5. ship the best by val
    if args.no_ship:
        print(f"best by val: {best[1]} ({best[0]:.4f}); not shipped (--no-ship)")
        return 0
    val_acc, name, members, tta, fuser, X, member_w, cnn = best
    cnn_val = val_accuracy(cnn["val"][0], data.val.y)
    if not val_acc > cnn_val:  # a fusion that does not beat its own CNN part on val is not a hybrid
        print(f"not shipped: the best fusion {name} (val {val_acc:.4f}) does not beat its CNN part "
              f"{'+'.join(members)} (val {cnn_val:.4f}) on val", file=sys.stderr)
        return 1
    cnn_pred = CNNEnsemblePredictor.from_files([files[m] for m in members], tta=tta, weights=member_w)
    for m, f in files.items():
        if m in members and f.resolve().parent != models_root.resolve():
            print(f"error: {f} is not in {models_root}; ship the CNN first (cnn_transfer.py --ship)", file=sys.stderr)
            return EXIT_MISSING
    hp = HybridPredictor(cnn_pred, lm, fuser, landmark_model=lm_json,
                         cnn_onnx=onnx_twin(args, members, models_root) if "cnn_embedding" not in fuser.inputs else None)
    ship = hp.save(models_root / "hybrid" / "hybrid.json", models_root=models_root,
                   extra={"val_accuracy": val_acc, "variant": name, "report": f"experiments/reports/{name}/report.json"})
    report = json.loads((out_root / name / "report.json").read_text())
    head = ship.with_name("hybrid-fusion.skops")
    artifacts.update_manifest("hybrid", ship, root=models_root, command=command, data=report["data"], weights=weights,
                              metrics={s: {k: report["metrics"][s][k] for k in ("accuracy", "macro_f1", "n")}
                                       for s in SPLITS},
                              report=f"experiments/reports/{name}/report.json",
                              extra_files=[str(head)] if head.exists() else None)
    print(f"shipped {name} (val {val_acc:.4f}) -> {ship}")
    return 0


def write_ensemble_report(out_root: Path, members, files, tta, cnn, data, fp_labels, weights, command,
                          member_w) -> None:
    """Report (kind "cnn") for the weighted average of our CNNs, with a loadable descriptor beside it."""
    from fer_hybrid.hybrid import CNNEnsemblePredictor, save_cnn_ensemble

    name = "cnn-ensemble-" + "+".join(members)
    metrics = split_metrics({s: cnn[s][0] for s in SPLITS}, data, fp_labels)
    pred = CNNEnsemblePredictor.from_files([files[m] for m in members], tta=tta, name=name, weights=member_w)
    desc = save_cnn_ensemble(pred, out_root / name / "ensemble.json", models_root=files[members[0]].parent,
                             extra={"members": members})
    write(out_root, name, "cnn", metrics, pred, desc, data, weights, command,
          backbone=f"weighted average of {', '.join(members)} (weights {np.round(member_w, 3).tolist()}, "
                   f"TTA {tta}, both chosen on val)", tta=tta,
          cnn_files=[files[m].name for m in members], member_weights=[float(w) for w in member_w],
          labels_trained_on="FER2013 (original labels)",
          notes="weighted average of our CNNs' softmax outputs; members and weights by greedy ensemble selection "
                "(Caruana et al. 2004) on val accuracy, TTA policy chosen on val; test only reported")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except MissingModel as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_MISSING
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_MISSING


if __name__ == "__main__":
    sys.exit(main())
