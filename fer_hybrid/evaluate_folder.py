"""Score a labelled image folder through the full Analyzer and write a standard report.

    python -m fer_hybrid.evaluate_folder PATH [--model NAME] [--labels subfolders|pattern REGEX]
        [--map anger=angry,fearful=fear] [--align box|level|eyes] [--crop-margin M] [--temperature T]
        [--out DIR]

Labels come from class sub-folders (default) or a regular expression on the file name (group ``label``, else
group 1); ``--map`` adds LABEL=CLASS pairs to the identity map of the five classes; images with other labels
are skipped and counted. Writes report.json + report.md (accuracy counting images without a face as errors,
macro-F1, per-class scores; the folder is the report's "test" split), confusion.png and predictions.csv (one
row per image with its file name) to ``--out`` (default ./evaluate_folder/<folder>-<model>).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .cli_args import OneLineParser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(prog="python -m fer_hybrid.evaluate_folder", description=__doc__.split("\n\n")[0])
    ap.add_argument("path", type=Path, help="folder of labelled images")
    ap.add_argument("--model", default="default", help="registered model name (default: the shipped default)")
    ap.add_argument("--labels", nargs="+", default=["subfolders"], metavar="subfolders|pattern REGEX",
                    help="where labels come from: 'subfolders' (default) or 'pattern REGEX' on the file name")
    ap.add_argument("--map", default=None, help="extra LABEL=CLASS pairs, comma-separated (e.g. anger=angry)")
    ap.add_argument("--align", default=None, choices=["off", "box", "level", "eyes"],
                    help="crop framing for crop models (default: the Analyzer's)")
    ap.add_argument("--crop-margin", type=float, default=None, help="box margin per side (default: the Analyzer's)")
    ap.add_argument("--temperature", type=float, default=None, help="temperature scaling of the probabilities")
    ap.add_argument("--models-dir", default=None, help="models folder (default: the packaged models)")
    ap.add_argument("--out", type=Path, default=None, help="report folder")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def _labels_source(values: list[str]) -> str:
    from .evaluation.folder import SUBFOLDERS, FolderError, compile_pattern

    if values == [SUBFOLDERS]:
        return SUBFOLDERS
    if len(values) == 2 and values[0] == "pattern":
        compile_pattern(values[1])
        return values[1]
    raise FolderError(f"--labels takes 'subfolders' or 'pattern REGEX', got {' '.join(values)!r}")


def run(args: argparse.Namespace) -> dict:
    from . import Analyzer
    from .evaluation.folder import collect, evaluate, parse_map
    from .evaluation.folder_report import write_folder_report

    labels = _labels_source(args.labels)
    items, skipped = collect(args.path, labels, parse_map(args.map))
    if not items:
        raise ValueError(f"no image under {args.path} has a label mapped to a class (skipped: "
                         f"{', '.join(f'{k} {v}' for k, v in skipped.items())}); see --labels and --map")
    kw = {}
    if args.align is not None:
        kw["align"] = False if args.align == "off" else args.align
    if args.crop_margin is not None:
        kw["crop_margin"] = args.crop_margin
    if args.temperature is not None:
        kw["temperature"] = args.temperature
    analyzer = Analyzer(args.model, models_dir=args.models_dir, **kw)
    result = evaluate(analyzer, items, root=args.path, progress=not args.quiet)
    out = args.out or Path("evaluate_folder") / f"{args.path.resolve().name}-{analyzer.name}"
    report = write_folder_report(result, out, folder=args.path, model=analyzer.name, labels=labels,
                                 skipped=skipped, analyzer=repr(analyzer))
    m = result.metrics
    print(f"{m['n']} images, faces found in {m['found']}, accuracy {m['accuracy']:.4f} (images without a face "
          f"count as errors), over found faces {m['accuracy_found']:.4f}, macro-F1 {m['macro_f1']:.4f}; "
          f"skipped {sum(skipped.values())}; wrote {out}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from .evaluation.folder import FolderError
    from .predictors import ArtifactError, ArtifactMissingError

    try:
        run(args)
    except (FolderError, ArtifactMissingError, ArtifactError, ValueError) as e:
        print(f"fer_hybrid.evaluate_folder: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"fer_hybrid.evaluate_folder: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
