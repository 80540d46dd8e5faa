"""Two networks with one view each, instead of one network with two: a base CNN plus a partner chosen on val.

    python experiments/cnn_pair.py --base vggbn-kdv-soup --partners vggbn,vggbn-ft,vggbn-long --name vggbn-pair

Method (library: fer_hybrid.cnn.pair)
1. Networks: registered Keras CNNs (models/) or trained runs (the checkpoint that experiments/reports/NAME
   evaluated, sha256 checked): the base and every candidate partner, each run on the face only (no TTA).
2. Partner on val: each pair's val accuracy as it would run (uniform mean of the two softmax outputs); the best
   pair wins (ties: the order given). No weights are tuned. Test is not looked at.
3. The pair as one Keras model (:func:`fer_hybrid.cnn.pair.average_networks`), evaluated on train / val / test
   exactly as the registry runs it (no TTA outside the graph), with its batch-1 ms per face.
4. Saved under experiments/checkpoints/NAME/pair.keras (``experiments/ship_checkpoint.py`` registers it).
5. Report: the standard schema plus the ``pair`` section (base, partners with their files, sha256 and the trail).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the registered CNN (or report name) every pair contains")
    ap.add_argument("--partners", required=True, help="comma-separated registered CNNs or report names")
    ap.add_argument("--name", default="vggbn-pair", help="report and model name (default vggbn-pair)")
    ap.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    ap.add_argument("--checkpoints", default=str(ROOT / "experiments" / "checkpoints"))
    args = ap.parse_args(argv)
    partners = [n.strip() for n in args.partners.split(",") if n.strip()]
    if not partners or args.base in partners or len(set(partners)) != len(partners):
        print("error: --partners needs distinct names, none of them the --base", file=sys.stderr)
        return 2

    import keras

    from fer_hybrid import reports
    from fer_hybrid.cnn.export import is_flip_tta, without_flip_tta
    from fer_hybrid.cnn.pair import average_networks, pair_trail
    from fer_hybrid.cnn.train import predict_proba, save_model
    from fer_hybrid.data import DataError, load_fer2013
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation.soup_report import ingredient_file
    from fer_hybrid.evaluation.transfer_report import evaluate_shipped

    # 1. Networks, each the exact file its registry entry or report names, each on the face only.
    names = [args.base, *partners]
    try:
        files = {n: ingredient_file(n, ROOT) for n in names}
        data = load_fer2013(args.data)
    except (ValueError, FileNotFoundError, DataError) as e:  # ArtifactError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    networks = {}
    for n, f in files.items():
        model = keras.models.load_model(f, compile=False)
        networks[n] = without_flip_tta(model) if is_flip_tta(model) else model
    val = {n: predict_proba(m, data.val.x, tta=False) for n, m in networks.items()}

    # 2. The partner, chosen on val as the pair would run.
    try:
        trail = pair_trail(val[args.base], {n: val[n] for n in partners}, data.val.y)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    chosen = trail[0]["partner"]
    print(json.dumps({"trail": trail}))

    # 3. The pair as one model, as the registry runs it: train / val / test, batch-1 ms per face.
    pair = average_networks([networks[args.base], networks[chosen]], name=args.name.replace("-", "_"))
    _, _, metrics, latency, as_run = evaluate_shipped(pair, args.name, data, flip_in_graph=False, tta=False)

    # 4. Artifact.
    path = save_model(pair, Path(args.checkpoints) / args.name / "pair.keras")

    # 5. Report.
    fields = {"method": "base + one partner, each network on the face only (no TTA), uniform mean of the two "
                        "softmax outputs; partner chosen by the pair's val accuracy; test not used",
              "base": args.base, "chosen": chosen, "trail": trail,
              "networks": [{"name": n, **reports.artifact_info(files[n], ROOT),
                            "val_alone": float((val[n].argmax(1) == data.val.y).mean())} for n in names]}
    report = reports.make_report(
        name=args.name, kind="cnn", weights=f"output mean of {args.base}, {chosen}", metrics=metrics,
        command=command_line(), ms_per_face=latency, params=int(pair.count_params()),
        artifact=reports.artifact_info(path, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        backbone=networks[args.base].name, tta=False, evaluated_as_run=as_run, pair=fields,
        notes=f"two networks ({args.base}, {chosen}), each on the face only, their softmax outputs averaged in one "
              f"graph; partner chosen on val among {', '.join(partners)}; metrics as the registry runs it (no TTA)")
    out = reports.write_report(report, Path(args.reports) / args.name)
    print(json.dumps({"name": args.name, "chosen": chosen, "val": metrics["val"]["accuracy"],
                      "test": metrics["test"]["accuracy"], "report": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
