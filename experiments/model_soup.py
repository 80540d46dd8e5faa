"""Model soup: one CNN whose weights average fine-tunes of one parent, chosen greedily on val.

    python experiments/model_soup.py --ingredients vggbn-long,vggbn-long-ft,vggbn-long-ft-s53 --name vggbn-soup --ship

Method (library: fer_hybrid.cnn.soup, fer_hybrid.evaluation.soup_report)
1. Ingredients: registered Keras CNNs (models/) or trained runs (the checkpoint that
   experiments/reports/NAME evaluated, sha256 checked), all fine-tuned from one parent network so that their
   weights can be averaged (Wortsman et al. 2022).
2. Greedy soup on val: ingredients in order of their val accuracy with the flip TTA (as the registry runs a
   Keras CNN); each joins the uniform weight average only if the soup's val accuracy does not drop.
   Test is not looked at.
3. The soup is evaluated on train / val / test exactly as the registry will run it (flip TTA; in the graph when
   the ingredients carry it there, as ``--flip-in-graph`` ships vggface), with its
   batch-1 ms per face. It costs one network at inference, unlike an ensemble of its ingredients.
4. Saved under experiments/checkpoints/NAME; ``--ship`` writes models/NAME.keras and its manifest entry
   (its TTA from the report: flip outside the network, or none when the flip is in the graph).
5. Report: the standard schema plus the ``soup`` section (ingredients, their sha256 and val, the trail).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ingredients", required=True, help="comma-separated registered CNNs or report names")
    ap.add_argument("--name", default="vggbn-soup", help="report and model name (default vggbn-soup)")
    ap.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    ap.add_argument("--reports", default=str(ROOT / "experiments" / "reports"))
    ap.add_argument("--checkpoints", default=str(ROOT / "experiments" / "checkpoints"))
    ap.add_argument("--uniform", action="store_true",
                    help="average every ingredient (uniform soup) instead of the greedy choice; the trail still "
                         "records each step's val accuracy")
    ap.add_argument("--ship", action="store_true", help="write models/NAME.keras and its manifest entry")
    args = ap.parse_args(argv)

    from fer_hybrid import artifacts, reports
    from fer_hybrid.artifacts import manifest_metrics
    from fer_hybrid.cnn.soup import greedy_soup
    from fer_hybrid.cnn.train import save_model, ship_model
    from fer_hybrid.data import DataError, load_fer2013
    from fer_hybrid.evaluate import command_line
    from fer_hybrid.evaluation import soup_report as S
    from fer_hybrid.evaluation.transfer_report import evaluate_shipped

    # 1. Ingredients, each the exact file its registry entry or report names.
    names = [n.strip() for n in args.ingredients.split(",") if n.strip()]
    try:
        files = [S.ingredient_file(n, ROOT) for n in names]
        data = load_fer2013(args.data)
        models, flip_in_graph = S.load_ingredients(files)   # flip-in-graph files: the network inside
    except (ValueError, FileNotFoundError, DataError) as e:   # ArtifactError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2

    # 2. Greedy soup, chosen on val with the flip TTA.
    try:
        result = greedy_soup(models, score=lambda m: S.flip_accuracy(m, data.val), keep_all=args.uniform)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fields = S.soup_fields(names, files, result, ROOT, uniform=args.uniform)
    print(json.dumps({"trail": fields["trail"]}))

    # 3. The soup as the registry runs it (flip TTA, outside the network or in its graph as the ingredients
    #    had it): train / val / test, batch-1 ms per face.
    soup, _, metrics, latency, as_run = evaluate_shipped(result.model, args.name, data,
                                                         flip_in_graph=flip_in_graph, tta=not flip_in_graph)
    tta = "flip (in the shipped graph)" if flip_in_graph else True

    # 4. Artifacts.
    path = save_model(soup, Path(args.checkpoints) / args.name / "soup.keras")
    if args.ship:
        path, warning = ship_model(soup, artifacts.models_dir() / f"{args.name}.keras")
        if warning:
            print(warning, file=sys.stderr)

    # 5. Report.
    report = reports.make_report(
        name=args.name, kind="cnn", weights=f"weight average of {', '.join(fields['chosen'])}", metrics=metrics,
        command=command_line(), ms_per_face=latency, params=int(soup.count_params()),
        artifact=reports.artifact_info(path, ROOT), data={"source": Path(data.source).name, "sha256": data.sha256},
        backbone=models[0].name, tta=tta, evaluated_as_run=as_run, soup=fields,
        notes=((f"uniform model soup of all {len(names)} ingredients (val only scores the trail)" if args.uniform else
                f"greedy model soup of {len(fields['chosen'])} of {len(names)} ingredients, chosen on val")
               + "; one network at inference; metrics with the flip TTA "
               + ("in the shipped graph" if flip_in_graph else "the registry applies")))
    out = reports.write_report(report, Path(args.reports) / args.name)
    if args.ship:
        artifacts.update_manifest(args.name, path, command=command_line(), data=report["data"],
                                  weights=report["weights"], metrics=manifest_metrics(metrics),
                                  report=reports.repo_path(out, ROOT), kind="cnn", loader="keras",
                                  description=f"model soup: the weight average of {', '.join(fields['chosen'])} "
                                              f"(one {models[0].name} network, flip TTA"
                                              f"{' in the graph' if flip_in_graph else ''})")
    print(json.dumps({"name": args.name, "chosen": fields["chosen"], "val": metrics["val"]["accuracy"],
                      "test": metrics["test"]["accuracy"], "report": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
