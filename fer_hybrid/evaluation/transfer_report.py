"""The CNN track's run around :func:`fer_hybrid.cnn.train.fit`: FER+ soft targets, evaluation of what ships,
and the schema-1 report (``experiments/cnn_transfer.py``).

    targets, text = ferplus_mix_targets(data.train, data.classes, mix=0.5)
    shipped, predictor, metrics, latency, as_run = evaluate_shipped(result.model, name, data, flip_in_graph=True)
    report = transfer_report(name=name, kind="cnn", result=result, metrics=metrics, ...)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

FER2013_LABELS = "FER2013 (original labels)"


def ferplus_mix_targets(train, classes, mix: float) -> tuple[np.ndarray, str]:
    """Soft training targets (1 - mix) x FER2013 one-hot + mix x FER+ vote shares (files from $FERPLUS_DIR) for a
    training ``Split``, and the report's ``labels_trained_on`` text. FileNotFoundError/FerPlusError without FER+
    files, ValueError for a mix outside [0, 1] (:func:`fer_hybrid.ferplus.soft_targets`)."""
    from ..ferplus import ferplus_vote_shares, soft_targets

    targets, n_voted = soft_targets(train, ferplus_vote_shares(classes=classes), mix, len(classes))
    return targets, (f"soft targets: {1 - mix:g} x FER2013 one-hot + {mix:g} x FER+ vote shares over the "
                     f"{len(classes)} classes ({n_voted} of {len(train)} training images have FER+ votes; the rest "
                     "keep the FER2013 label)")


def evaluate_shipped(model, name: str, data, flip_in_graph: bool = False, tta: bool = False) -> tuple:
    """What ships (``model``, with the flip TTA in its graph when ``flip_in_graph``) evaluated on train / val /
    test as the registry runs it - or, with ``tta`` outside the graph, as :func:`fer_hybrid.cnn.train.predict_proba`
    with flip TTA - and its batch-1 ms per face. Returns (shipped model, KerasPredictor, metrics, ms, as_run)."""
    from ..evaluate import evaluate_predictor, ms_per_face
    from ..predictors import KerasPredictor

    shipped = model
    if flip_in_graph:
        from ..cnn.export import with_flip_tta

        shipped = with_flip_tta(model, name=name.replace("-", "_"))
    predictor = KerasPredictor(shipped, name)
    as_run = flip_in_graph or not tta
    if as_run:
        metrics = evaluate_predictor(predictor.predict_proba, data)
    else:
        from ..cnn.train import predict_proba

        metrics = evaluate_predictor(lambda x: predict_proba(model, x, tta=True), data)
    return shipped, predictor, metrics, ms_per_face(predictor.predict_proba, data.test.x[:1]), as_run


def training_notes(weights: str | None, epochs_run: int, best_epoch: int) -> str:
    """The report's notes on initial weights, and on a run cut by its epoch budget (best val at the last epoch)."""
    notes = ("trained from random initialisation (weights=None): no pretrained weights can be downloaded on "
             "this machine" if weights is None else f"initial weights: {weights}")
    if best_epoch >= epochs_run:
        notes += (f"; the best val accuracy came at the last of {epochs_run} epochs: the run was cut by its "
                  "epoch budget (CPU time), not by early stopping, so the model is under-trained")
    return notes


def widen_note(cfg) -> str:
    """The notes' sentence on a widened initial network (``cfg.widen``; a TrainConfig), else ""."""
    if not cfg.widen:
        return ""
    widths = "-".join(str(w) for w in cfg.model_kwargs.get("widths", ()))
    return (f"; the initial network was widened to {widths} keeping its function (Net2WiderNet, "
            f"fer_hybrid.cnn.widen; noise {cfg.widen_noise:g} x kernel std on the copied channels)")


def transfer_report(*, name: str, kind: str, cfg, result, metrics: dict, latency: float, artifact: dict | None,
                    data, command: str, image_size: int | None, flip_in_graph: bool, tta: bool, as_run: bool,
                    onnx: dict | None, labels_trained_on: str, teacher: dict | None) -> dict:
    """The schema-1 report of one CNN training run (``cfg`` a TrainConfig, ``result`` its TrainResult);
    ``image_size`` None: the trained network's input size."""
    from ..reports import make_report

    model = result.model
    return make_report(
        name=name, kind=kind, weights=cfg.weights, metrics=metrics, command=command,
        seconds_per_epoch=result.seconds_per_epoch, ms_per_face=latency, params=int(model.count_params()),
        artifact=artifact, data={"source": Path(data.source).name, "sha256": data.sha256},
        backbone=cfg.backbone, image_size=model.layers[1].output.shape[1] if image_size is None else image_size,
        epochs=result.epochs_run, best_epoch=result.best_epoch, precision=result.precision,
        tta="flip (in the shipped graph)" if flip_in_graph else tta, evaluated_as_run=as_run, onnx=onnx,
        config=cfg.to_dict(), history=result.history, labels_trained_on=labels_trained_on, teacher=teacher,
        notes=training_notes(cfg.weights, result.epochs_run, result.best_epoch) + widen_note(cfg),
        figures=["training_curves.png"])


def load_teacher(teacher: str):
    """The teacher ``teacher``: a registered model's name, or the path of a CNN-ensemble descriptor (``.json``,
    e.g. the ``ensemble.json`` beside a ``cnn-ensemble-*`` report of ``experiments/teacher_ensemble.py``).
    ArtifactError / ArtifactMissingError / ValueError as the registry and the descriptor loader raise them."""
    from ..errors import ArtifactMissingError
    from ..hybrid import load_cnn_ensemble_predictor
    from ..predictors import load_predictor

    if str(teacher).endswith(".json"):
        if not Path(teacher).is_file():
            raise ArtifactMissingError(f"teacher descriptor {teacher} not found")
        return load_cnn_ensemble_predictor(Path(teacher), name=Path(teacher).parent.name)
    return load_predictor(teacher)


def distillation_from(teacher: str, train, classes, temperature: float, alpha: float) -> tuple[np.ndarray, dict, str]:
    """:func:`fer_hybrid.cnn.distill.teacher_targets` of the teacher ``teacher`` (:func:`load_teacher`) on a
    training ``Split`` (targets cached in :func:`fer_hybrid.data.cache_dir`): (targets (n, 2k), teacher info,
    labels text)."""
    return distillation_from_model(load_teacher(teacher), teacher, train, classes, temperature, alpha)


def distillation_from_model(model, teacher: str, train, classes, temperature: float,
                            alpha: float) -> tuple[np.ndarray, dict, str]:
    """:func:`distillation_from` with the registered model ``teacher`` already loaded as ``model``."""
    from ..cnn.distill import teacher_targets
    from ..data import cache_dir

    return teacher_targets(model, teacher, train.x, train.y, len(classes), temperature, alpha, cache_dir())


def distillation_with_views(teacher: str, train, classes, temperature: float, alpha: float, copies: int, seeds,
                            tta: str) -> tuple:
    """:func:`distillation_from` on the training ``Split`` plus the teacher's answers, under the TTA policy ``tta``,
    on ``copies`` fixed augmented views of it per seed in ``seeds`` (an int or a sequence;
    :func:`fer_hybrid.cnn.distill.teacher_view_targets`, cached per seed).
    Returns (the union ``Split``: originals then views, keys ``<key>#view<c>``; targets (len(union), 2k);
    teacher info with a ``views`` entry; labels text)."""
    from ..cnn.distill import distillation_targets, teacher_view_targets
    from ..data import Split, cache_dir

    model = load_teacher(teacher)
    targets, info, text = distillation_from_model(model, teacher, train, classes, temperature, alpha)
    views, labels, proba, view_info = teacher_view_targets(model, teacher, train.x, train.y, len(classes), copies,
                                                           seeds, tta, cache_dir())
    total = view_info["copies"]
    keys = np.concatenate([train.keys] + [np.char.add(train.keys.astype(str), f"#view{c}") for c in range(total)])
    union = Split(np.concatenate([train.x, views]), np.concatenate([train.y, labels]), keys)
    info["views"] = view_info
    text += (f"; plus the teacher's answers ({tta} TTA) on {total} fixed augmented view(s) of every training image "
             "(shift, rotation, zoom, brightness, contrast; the flip stays online)")
    return union, np.concatenate([targets, distillation_targets(proba, labels, len(classes))]), info, text


def unlabelled_classes(classes) -> tuple[str, ...]:
    """``classes`` (names, or one comma-separated string) as a tuple of FER2013 classes outside the study, e.g.
    "neutral,disgust" -> ("neutral", "disgust"); ValueError for none, a study class or an unknown name."""
    from ..labels import FER2013_EMOTIONS, STUDY_EMOTIONS

    names = tuple(c.strip() for c in (classes.split(",") if isinstance(classes, str) else classes) if c.strip())
    if not names or set(names) & set(STUDY_EMOTIONS) or not set(names) <= set(FER2013_EMOTIONS):
        raise ValueError(f"unlabelled faces must come from FER2013 classes outside the study "
                         f"({', '.join(c for c in FER2013_EMOTIONS if c not in STUDY_EMOTIONS)}), got {list(names)}")
    return names


def with_unlabelled_faces(teacher: str, union, targets: np.ndarray, info: dict, text: str, source,
                          classes: tuple[str, ...]) -> tuple:
    """Distillation data (``union`` Split, ``targets`` (n, 2k), teacher ``info``, labels ``text``) plus the
    *training* faces of ``source`` (a FER2013 source) labelled with ``classes`` outside the study (e.g. neutral,
    disgust): no val or test face is used. The teacher's probabilities on them (cached like its other targets) are
    both halves of their targets, KD target and label part, since they have no study label; their ``y`` is the
    teacher's argmax. Returns (union, targets, info with an ``unlabelled_faces`` entry, text).
    ValueError for a study class or an unknown class name (:func:`unlabelled_classes`)."""
    from ..cnn.distill import cached_teacher_proba, teacher_key
    from ..data import Split, cache_dir, load_fer2013

    classes = unlabelled_classes(classes)
    extra = load_fer2013(source, classes=classes).train
    cnn = load_teacher(teacher)
    cnn = getattr(cnn, "cnn", cnn)
    proba, extra_info = cached_teacher_proba(cnn.predict_proba, extra.x, teacher_key(teacher, cnn), cache_dir())
    proba = proba / proba.sum(1, keepdims=True)
    keys = np.char.add(extra.keys.astype(str), "#unlabelled")
    union = Split(np.concatenate([union.x, extra.x]), np.concatenate([union.y, proba.argmax(1)]),
                  np.concatenate([union.keys.astype(str), keys]))
    info = {**info, "unlabelled_faces": {"classes": list(classes), "n": int(len(extra)),
                                         "seconds": extra_info["seconds"], "cache": extra_info["cache"],
                                         "target": "the teacher's probabilities, in both halves"}}
    text += (f"; plus the {len(extra)} training faces labelled {', '.join(classes)} (outside the study), each with "
             "the teacher's probabilities as its only target")
    return union, np.concatenate([targets, np.concatenate([proba, proba], 1).astype(np.float32)]), info, text


def distillation_with_framed_views(teacher: str, train, classes, temperature: float, alpha: float, seeds,
                                   n_jobs: int = 1) -> tuple:
    """:func:`distillation_from` on the training ``Split`` plus, per seed in ``seeds``, the Analyzer's crop of every
    training face found in a random frame (:func:`fer_hybrid.evaluation.framed_views.cached_framed_views`, cached
    per seed). A framed crop's target is the teacher's answer on its clean original face (the one the teacher
    already gave) with the face's label: the student learns to answer on the Analyzer's crop as the teacher does
    on FER2013's. Returns (the union ``Split``: originals then framed crops, keys ``<key>#framed<seed>``; targets
    (len(union), 2k); teacher info with a ``framed_views`` entry; labels text)."""
    from ..cnn.distill import distinct_seeds
    from ..data import Split, cache_dir
    from .framed_views import cached_framed_views

    seed_list = distinct_seeds(seeds, "framed view")
    targets, info, text = distillation_from(teacher, train, classes, temperature, alpha)
    xs, ys, keys, tg, groups = [train.x], [train.y], [train.keys], [targets], []
    for seed in seed_list:
        crops, source, g = cached_framed_views(train.x, seed, cache_dir(), n_jobs=n_jobs)
        xs.append(crops)
        ys.append(train.y[source])
        keys.append(np.char.add(train.keys[source].astype(str), f"#framed{seed}"))
        tg.append(targets[source])
        groups.append(g)
    union = Split(np.concatenate(xs), np.concatenate(ys), np.concatenate(keys))
    info["framed_views"] = {"seeds": seed_list, "groups": groups, "crops": int(sum(g["found"] for g in groups)),
                            "seconds": float(sum(g["seconds"] for g in groups)),
                            "target": "the teacher's answer on the clean original face"}
    text += (f"; plus the Analyzer's level crop of every training face found in one random frame per seed "
             f"(seeds {', '.join(map(str, seed_list))}; scale, rotation, position, gamma, blur, noise, JPEG), each "
             "with the teacher's answer on its clean original face")
    return union, np.concatenate(tg), info, text
