"""Reports of the hybrid experiment (``experiments/hybrid.py``): one per fusion variant and one for the CNN ensemble.

:class:`Reporter` holds what every report shares (the data, the FER+ labels, the CNN's initial weights, the
command) and writes, from precomputed probabilities (:mod:`fer_hybrid.fusion_parts`), a schema-1 report
(:mod:`fer_hybrid.reports`) with metrics on train/val/test (+ ``test_ferplus`` against the FER+ majority labels
when given), batch-1 latency and parameters of the loadable model, and a one-line summary on stdout:

>>> rep = Reporter(Path("experiments/reports"), data, ferplus_labels, weights=None, command="python ...")
>>> rep.variant(variant, files, landmarks, landmark_json, models_root, chosen=True)   # hybrid-<variant>/
>>> rep.cnn_ensemble({"a": 0.6, "b": 0.4}, "flip", cnn, files, models_root)          # cnn-ensemble-a+b/
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import fusion as fz
from ..evaluate import metrics_from_proba, ms_per_face
from ..ferplus import ferplus_metrics, summary
from ..fusion_parts import SPLITS, Variant
from ..hybrid import CNNEnsemblePredictor, save_cnn_ensemble
from ..reports import artifact_info, make_report, write_report

LABELS = "FER2013 (original labels)"


@dataclasses.dataclass
class Reporter:
    """Writes reports into ``out_root``; artifact paths are shown relative to ``repo_root`` (default: the cwd's
    view, absolute). ``weights``: the CNN's initial weights as recorded in the manifest (None: random init)."""

    out_root: Path
    data: object
    ferplus_labels: object | None = None
    weights: str | None = None
    command: str | None = None
    repo_root: Path | None = None

    def metrics(self, proba: Mapping[str, np.ndarray]) -> dict:
        """{split: metrics} of probabilities {split: (n, k)} (+ ``test_ferplus`` when FER+ labels are given)."""
        m = {s: metrics_from_proba(self.data.split(s).y, proba[s], self.data.classes) for s in SPLITS}
        if self.ferplus_labels is not None:
            m["test_ferplus"] = summary(ferplus_metrics(proba["test"], self.data.test, self.ferplus_labels))
        return m

    def write(self, name: str, kind: str, metrics: dict, predictor, descriptor: Path, **extra) -> dict:
        """Write the report ``out_root/name`` of ``predictor`` (saved as ``descriptor``); returns it."""
        report = make_report(name=name, kind=kind, weights=self.weights, metrics=metrics, command=self.command,
                             ms_per_face=ms_per_face(predictor.predict_proba, self.data.test.x[:1], repeats=20),
                             params=int(predictor.count_params()) + int(extra.pop("head_params", 0)),
                             artifact=artifact_info(descriptor, self.repo_root),
                             data={"source": Path(self.data.source).name, "sha256": self.data.sha256}, **extra)
        write_report(report, Path(self.out_root) / name)
        fp = f" FER+ {metrics['test_ferplus']['accuracy']:.4f}" if "test_ferplus" in metrics else ""
        print(f"{name:32s} val {metrics['val']['accuracy']:.4f} test {metrics['test']['accuracy']:.4f} "
              f"macro-F1 {metrics['test']['macro_f1']:.4f}{fp}")
        return report

    def variant(self, v: Variant, files: Mapping[str, Path], landmarks, landmark_json: Path, models_root: Path,
                chosen: bool) -> dict:
        """Report (kind "hybrid") of a fusion variant, with its loadable descriptor ``hybrid.json`` beside it, its
        CNN part's accuracy and the fusion's gain over it on val and test, and how its val accuracy was measured."""
        metrics = self.metrics(v.proba())
        cnn_acc = v.cnn_accuracy({s: self.data.split(s).y for s in ("val", "test")})
        hp = v.predictor(files, landmarks, landmark_json)
        desc = hp.save(Path(self.out_root) / v.name / "hybrid.json", models_root=models_root,
                       extra={"val_accuracy": v.val_accuracy, "variant": v.name})
        return self.write(
            v.name, "hybrid", metrics, hp, desc, head_params=fz.head_params(v.fuser),
            backbone=f"{v.describe()} + landmark ensemble, {v.fuser.method} fusion", fusion=v.fuser.get_config(),
            selection_val_accuracy=v.val_accuracy, selection_note=v.fuser.selection_note,
            fallback_to_cnn=v.fallback(), chosen=chosen, cnn_files=[Path(files[m]).name for m in v.members],
            cnn_part_accuracy=cnn_acc, gain_over_cnn={s: metrics[s]["accuracy"] - a for s, a in cnn_acc.items()},
            labels_trained_on=LABELS,
            notes=f"CNN(s) {', '.join(v.members)}: initial weights {self.weights or 'none (random initialisation)'}; "
                  "fusion fit as documented in experiments/hybrid.py; every choice made on val only")

    def cnn_ensemble(self, weights: Mapping[str, float], tta: str, cnn: Mapping[str, tuple],
                     files: Mapping[str, Path], models_root: Path, **extra) -> dict:
        """Report (kind "cnn", named ``cnn-ensemble-<members>``) of the weighted average of CNNs ``weights``
        {member: weight} under ``tta`` (``cnn``: its :func:`~fer_hybrid.fusion_parts.combine_cnns` parts; only
        the probabilities are read), with its loadable descriptor ``ensemble.json`` (CNN files relative to
        ``models_root``) beside it; ``extra`` report fields are kept as given."""
        name = "cnn-ensemble-" + "+".join(weights)
        pred = CNNEnsemblePredictor.from_files([files[m] for m in weights], tta=tta, name=name,
                                               weights=list(weights.values()))
        desc = save_cnn_ensemble(pred, Path(self.out_root) / name / "ensemble.json", models_root=models_root,
                                 extra={"members": list(weights)})
        w = np.round(list(weights.values()), 3).tolist()
        return self.write(
            name, "cnn", self.metrics({s: cnn[s][0] for s in SPLITS}), pred, desc, tta=tta,
            backbone=f"weighted average of {', '.join(weights)} (weights {w}, TTA {tta}, both chosen on val)",
            cnn_files=[Path(files[m]).name for m in weights], member_weights=[float(x) for x in weights.values()],
            labels_trained_on=LABELS,
            notes="weighted average of our CNNs' softmax outputs; members and weights by greedy ensemble selection "
                  "(Caruana et al. 2004) on val accuracy, TTA policy chosen on val; test only reported", **extra)


def teacher_selection_markdown(record: Mapping) -> str:
    """Markdown of a teacher selection record (``experiments/teacher_ensemble.py``'s ``selection.json``): every
    candidate's val and test accuracy under the policy, the members and weights kept on val, the teacher's val and
    test, and whether it passed ``min_val``."""
    chosen = record["members"]
    lines = [f"# Teacher selection ({record['tta']} TTA)", "",
             "Members and weights by greedy ensemble selection (Caruana et al. 2004) on val; test only reported.", "",
             "| candidate | val | test | weight |", "|---|---:|---:|---:|"]
    for name, acc in record["candidates"].items():
        lines.append(f"| {name} | {acc['val']:.4f} | {acc['test']:.4f} | {chosen.get(name, 0.0):.2f} |")
    gate = ("no gate" if record.get("min_val") is None else
            f"{'above' if record['passed'] else 'not above'} --min-val {record['min_val']:.4f}: "
            f"{'went on to the training set' if record['passed'] else 'stopped before the training set'}")
    lines += ["", f"Teacher: val {record['val_accuracy']:.4f}, test {record['test_accuracy']:.4f} ({gate}).", "",
              f"Command: `{record.get('command')}`", ""]
    return "\n".join(lines)
