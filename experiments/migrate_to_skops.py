"""One-time migration of the shipped models folder to files that never run code on load (issue 22/20).

    python experiments/migrate_to_skops.py [--models models]

1. Each sklearn member of the landmark ensemble (``landmarks/*.joblib``) and a learned fusion head of the
   hybrid (``hybrid/*-fusion.joblib``), if any, is unpickled once, here, only after its sha256 matched the
   descriptor that shipped it, then re-saved with skops (:func:`fer_hybrid.safe_io.save_sklearn`). The
   skops copy must give bit-identical probabilities on 2,000 seeded random feature rows before the
   ``.joblib`` is deleted.
2. ``landmarks/ensemble.json`` names the ``.skops`` files; ``hybrid/hybrid.json`` loses the old
   ``cnn.flip_tta`` field (only ``cnn.tta`` remains) and records the new ``ensemble.json`` sha256.
3. ``manifest.json`` gains what the registry needs (kind, loader, description, train_command, tta for Keras
   networks = the TTA their recorded metrics were measured with, ms_per_face from each report), new
   sha256/sizes, and the two registered but unshipped backbones (resnet50, vgg16).

Idempotent: a folder already migrated is only re-checked (registry fields an entry already has, e.g. of
models added since, are kept). Then run ``python -m fer_hybrid.verify``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The registry fields, formerly the _CNN table of fer_hybrid/predictors.py (kind, description).
REGISTRY = {
    "baseline": ("baseline", "small CNN from scratch, as in the study"),
    "vggbn": ("cnn", "our VGG-style CNN with BatchNorm, 48 px"),
    "mobilenetv2": ("cnn", "keras.applications MobileNetV2"),
    "resnet50": ("cnn", "keras.applications ResNet50"),
    "vgg16": ("cnn", "keras.applications VGG16"),
    "vggface": ("cnn", "VGGFace (VGG16 variant)"),
    "vggbn-ft": ("cnn", "vggbn trained 8 more epochs (a second cosine cycle, new seed): a snapshot-ensemble member"),
    "vggbn-s7": ("cnn", "vggbn trained from scratch with another seed: an independent ensemble member"),
    "vggbn-s7-fp": ("cnn", "vggbn-s7 trained 8 more epochs on soft targets: half FER2013 label, half FER+ vote shares"),
    "vggbn-long": ("cnn", "vggbn-ft trained 38 more epochs (a full-height cosine restart): the longest-trained vggbn"),
    "vggbn-s7-long": ("cnn", "vggbn-s7 trained 38 more epochs (a full-height cosine restart): long-trained, "
                             "independent of vggbn-long"),
    "vggbn-long-ft": ("cnn", "vggbn-long trained 8 more epochs (a second, lower cosine cycle): a snapshot-ensemble member"),
    "landmarks": ("landmarks", "dlib 68-point geometry -> gradient-boosted ensemble"),
    "hybrid": ("hybrid", "CNN ensemble + landmark fusion"),
}
UNSHIPPED = ("resnet50", "vgg16")


def migrate_member(path: Path, sha256: str, n_features: int) -> Path:
    """``path`` (.joblib) -> ``path.with_suffix('.skops')``; the .joblib is removed once both agree."""
    import joblib

    from fer_hybrid.safe_io import file_sha256, load_sklearn, save_sklearn

    if file_sha256(path) != sha256:
        raise SystemExit(f"{path}: sha256 differs from its descriptor; refusing to unpickle it")
    model = joblib.load(path)  # the one unpickling, of a committed file whose sha256 was just checked
    out = save_sklearn(model, path.with_suffix(".skops"))
    X = np.random.default_rng(0).normal(size=(2000, n_features)) * 3
    if not np.array_equal(model.predict_proba(X), load_sklearn(out).predict_proba(X)):
        raise SystemExit(f"{out}: probabilities differ from {path.name}; nothing deleted")
    path.unlink()
    print(f"{path.name} -> {out.name}")
    return out


def migrate_landmarks(folder: Path) -> Path:
    from fer_hybrid import _atomic
    from fer_hybrid.safe_io import file_sha256

    desc_path = folder / "ensemble.json"
    desc = json.loads(desc_path.read_text())
    for m in desc["members"]:
        if m["file"].endswith(".joblib"):
            out = migrate_member(folder / m["file"], m["sha256"], desc["features"]["n_features"])
            m["file"], m["sha256"] = out.name, file_sha256(out)
    _atomic.write_text(desc_path, json.dumps(desc, indent=2) + "\n")
    return desc_path


def migrate_hybrid(path: Path, landmarks: Path) -> Path:
    from fer_hybrid import _atomic
    from fer_hybrid.safe_io import file_sha256

    desc = json.loads(path.read_text())
    desc["cnn"].pop("flip_tta", None)
    fusion = desc["fusion"]
    if str(fusion.get("file", "")).endswith(".joblib"):
        n = fusion.get("n_features", 2 * len(desc["classes"]))
        out = migrate_member(path.parent / fusion["file"], fusion["sha256"], n)
        fusion["file"], fusion["sha256"] = out.name, file_sha256(out)
    desc["landmarks"]["sha256"] = file_sha256(landmarks)
    _atomic.write_text(path, json.dumps(desc, indent=2) + "\n")
    return path


def migrate_manifest(root: Path) -> None:
    from fer_hybrid.artifacts import MANIFEST, entry_kind, entry_loader, report_tta, write_manifest
    from fer_hybrid.safe_io import file_sha256

    manifest = json.loads((root / MANIFEST).read_text())
    models = manifest["models"]
    for name in UNSHIPPED:
        report = json.loads((ROOT / "experiments" / "reports" / name / "report.json").read_text())
        models.setdefault(name, {"file": f"{name}.keras", "train_command": report["command"] + " --ship",
                                 "report": f"experiments/reports/{name}/report.json"})
    for name, e in models.items():  # registry fields an entry already has are kept (a re-run changes nothing)
        kind, description = REGISTRY.get(name, (None, ""))
        report = json.loads((ROOT / e["report"]).read_text()) if e.get("report") else {}
        loader = entry_loader(e)
        e.update(kind=e.get("kind") or kind or entry_kind(e), loader=loader,
                 description=e.get("description") or description,
                 train_command=e.get("train_command") or e.get("command"))
        if loader == "keras":
            e["tta"] = report_tta(report)
        e["ms_per_face"] = report.get("ms_per_face")
        path = root / e["file"]
        if path.exists():
            e["sha256"], e["bytes"] = file_sha256(path), path.stat().st_size
        for extra in e.get("extra_files", []):
            extra["file"] = extra["file"].replace(".joblib", ".skops")
            extra["sha256"] = file_sha256(path.parent / extra["file"])
        order = ("kind", "loader", "tta", "description", "train_command", "file", "sha256", "bytes")
        models[name] = {**{k: e[k] for k in order if k in e}, **{k: v for k, v in e.items() if k not in order}}
    manifest["models"] = dict(sorted(models.items()))
    write_manifest(manifest, root)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=str(ROOT / "models"))
    args = ap.parse_args(argv)
    root = Path(args.models)

    landmarks = migrate_landmarks(root / "landmarks")
    migrate_hybrid(root / "hybrid" / "hybrid.json", landmarks)
    migrate_manifest(root)

    from fer_hybrid.predictors import check_artifact, list_models

    shipped = [n for n in list_models(available_only=True, root=root)]
    for name in shipped:
        check_artifact(name, root)
    print(f"manifest: {len(list_models(root=root))} models registered, {len(shipped)} shipped, sha256 all match")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
