"""The one entry point a job runner calls: validate, train (resumably), choose thresholds, export, evaluate.

Phases: ``train`` (with a ``validate`` event per epoch) → ``select`` (exit thresholds, then the
operating threshold, on the validation split) → ``evaluate`` (every exit and the early-exit policy on
the test split) → ``export`` (ONNX + parity + ``model.json``, published by one rename, last) → ``done``.
Re-running with the same ``work_dir`` after a crash resumes from the last epoch checkpoint.
Thresholds and test predictions are computed in float32 even on a mixed-precision device, so they are
the exported graphs' numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.cohorts.cache import CohortArrays, load_cohort_arrays
from app.core.errors import InputError
from app.fairness.engine.inputs import (
    AnyPredictionSet,
    MulticlassPredictionSet,
    MultilabelPredictionSet,
    PredictionSet,
)
from app.fairness.engine.thresholds import OperatingPoint
from app.modelpkg.manifest import (
    Decision,
    ExitPolicy,
    ModelManifest,
    TermRecord,
    TrainingGroups,
    TrainingRecord,
    ValidationSummary,
)
from app.modelpkg.outputs import exit_index
from app.modelpkg.outputs import served as served_probs
from app.modelpkg.task import Task, multiclass_decision
from app.modelpkg.threshold_rule import ThresholdRule
from app.training.config import TrainingConfig
from app.training.data import Normalizer
from app.training.decisions import (
    clean,
    multiclass_decision_record,
    multilabel_decision_record,
    operating_point,
    threshold_rule_record,
)
from app.training.export import describe_model, export_model
from app.training.folds import apply_fold_plan
from app.training.groups import GroupEncoding, encode_groups
from app.training.networks import ExitCosts, build_network, exit_costs, load_backbone_weights
from app.training.progress import (
    CancelCheck,
    Cancelled,
    Phase,
    ProgressCallback,
    ProgressEvent,
    never_cancel,
    no_progress,
)
from app.training.task_metrics import group_positive_fractions, score_exit
from app.training.teacher import load_teacher
from app.training.thresholds import ExitChoice, choose_exit_thresholds
from app.training.trainer import EpochRecord, FitResult, Trainer, select_device
from app.training.validation import validate_training_config

SELECTION = "highest validation AUC of the final exit (ties: earlier epoch)"
SELECTION_BY_TASK = {
    "binary": SELECTION,
    "multiclass": "highest validation macro one-vs-rest AUC of the final exit (ties: earlier epoch)",
    "multilabel": "highest validation mean per-finding AUC of the final exit (ties: earlier epoch)",
}
#: Recorded in the training record of a non-binary model trained with the hinge (docs/methods.md 2a).
PAIRWISE_EO_EXTENSION = {
    "multiclass": "one-vs-rest per class (scores softmax p_c, positives class c), each with its own worst "
    "group k*, hinges averaged over the classes where the batch defines them (not in the paper)",
    "multilabel": "one-vs-rest per finding (samples whose label is known), each with its own worst group k*, "
    "hinges averaged over the findings where the batch defines them (not in the paper)",
}
PARITY_SAMPLES = 8


@dataclass(frozen=True)
class TrainingResult:
    model_path: Path  # <model_dir>/<version>, holding the ONNX graphs and model.json
    manifest: ModelManifest  # the model.json written
    manifest_sha256: str  # of model.json's bytes
    history: list[EpochRecord]
    best_epoch: int
    operating_threshold: float | None  # binary; None for multiclass and multilabel (see ``decision``)
    exit_thresholds: list[float | None]  # per exit; the final head's is None; all None: no early exit
    validation: dict[str, Any]  # metrics of the served output on the validation split
    test_predictions: AnyPredictionSet
    device: str
    decision: Decision | None = None  # multiclass and multilabel: how probabilities become a decision


@dataclass(frozen=True)
class _Selection:
    """What is frozen with the model, all chosen on the validation split."""

    thresholds: list[float | None]
    choice: ExitChoice | None
    threshold: float | None  # binary
    point: OperatingPoint | None  # binary
    decision: Decision | None  # multiclass, multilabel
    validation: dict[str, Any]


def _decision_rates(task: Task, y: np.ndarray, served: np.ndarray, decision: Decision) -> tuple[float, float]:
    """Macro TPR and FPR of the decision on validation: over classes (one-vs-rest) or findings (known)."""
    thresholds = None if decision.thresholds is None else np.asarray(decision.thresholds)
    if task.kind == "multiclass":
        predicted = multiclass_decision(served, thresholds)
        pairs = [(y == c, predicted == c) for c in range(task.width)]
    else:
        assert thresholds is not None, "a multilabel decision has per-finding thresholds"
        known = [y[:, f] >= 0 for f in range(task.width)]
        pairs = [(y[k, f] == 1, served[k, f] >= thresholds[f]) for f, k in enumerate(known)]
    tpr = [float(p[t].mean()) for t, p in pairs if t.any()]
    fpr = [float(p[~t].mean()) for t, p in pairs if (~t).any()]
    return (float(np.mean(tpr)) if tpr else math.nan), (float(np.mean(fpr)) if fpr else math.nan)


def _select(
    cfg: TrainingConfig,
    task: Task,
    y: np.ndarray,
    probs: np.ndarray,
    codes: np.ndarray,
    groups: GroupEncoding,
    costs: ExitCosts,
    threshold_groups: GroupEncoding,
) -> _Selection:
    """Exit thresholds first (criteria free of the decision threshold: multiclass uses argmax), then the
    operating threshold or the decision on the served probabilities.

    ``codes`` are the training groups' and ``threshold_groups`` the operating point's, both on val."""
    choice = None
    thresholds: list[float | None] = [None] * probs.shape[1]
    if cfg.multi_exit:
        choice = choose_exit_thresholds(
            y,
            probs,
            codes,
            groups.n_groups,
            costs.fractions,
            grid=cfg.exit_threshold_grid,
            criterion=cfg.exit_criterion,
            tolerance=cfg.exit_auc_tolerance,
            task=task,
        )
        thresholds = choice.thresholds
    idx = exit_index(task.kind, probs, thresholds)
    served = served_probs(probs, idx)
    point, threshold, decision = None, None, None
    if task.kind == "binary":
        point = operating_point(cfg, y, served, threshold_groups)
        threshold = point.threshold
        pred = served >= threshold
        tpr, fpr = float(pred[y == 1].mean()), float(pred[y == 0].mean())
        scores = score_exit(task, y, served, codes, groups.n_groups)
    else:
        if task.kind == "multiclass":
            decision = multiclass_decision_record(cfg, y, served)
        else:
            decision = multilabel_decision_record(cfg, task, y, served, threshold_groups)
        tpr, fpr = _decision_rates(task, y, served, decision)
        class_thresholds = None if decision.thresholds is None else np.asarray(decision.thresholds)
        scores = score_exit(task, y, served, codes, groups.n_groups, class_thresholds)
    pf = group_positive_fractions(task, y, served, codes, groups.n_groups)
    validation = {
        "auc": scores.auc,
        "auc_final_exit": score_exit(task, y, probs[:, -1], codes, groups.n_groups).auc,
        "exit_auc": [score_exit(task, y, probs[:, e], codes, groups.n_groups).auc for e in range(probs.shape[1])],
        "pf": dict(zip(groups.labels, pf.tolist(), strict=True)),
        "pfd": scores.pfd,
        "tpr": tpr,
        "fpr": fpr,
        "exit_rate": np.bincount(idx, minlength=probs.shape[1]) / len(idx),
        "mean_compute": float(np.asarray(costs.fractions)[idx].mean()),
    }
    if task.kind == "multiclass":
        validation |= {"accuracy": scores.accuracy, "macro_f1": scores.macro_f1, "eopp1": scores.eopp1}
    return _Selection(thresholds, choice, threshold, point, decision, clean(validation))


def _provenance(
    cfg: TrainingConfig, task: Task, selection: _Selection, fit: FitResult, groups: GroupEncoding, trainer: Trainer
) -> tuple[ThresholdRule | None, ExitPolicy, TrainingRecord]:
    """The manifest's record of how the weights and thresholds were chosen (a non-binary model has no
    operating threshold: its ``decision`` records its thresholds' rules)."""
    extension = PAIRWISE_EO_EXTENSION.get(task.kind) if cfg.pairwise else None
    return (
        threshold_rule_record(cfg, selection.point) if selection.point is not None else None,
        ExitPolicy.model_validate(
            {
                "confidence": task.confidence_rule,
                "criterion": cfg.exit_criterion,
                "auc_tolerance": cfg.exit_auc_tolerance,
                "grid": cfg.exit_threshold_grid,
                "candidates": clean([asdict(c) for c in selection.choice.candidates] if selection.choice else []),
            }
        ),
        TrainingRecord(
            config=cfg.model_dump(mode="json"),
            seed=cfg.seed,
            device=str(trainer.device),
            mixed_precision=str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype else None,
            selection=SELECTION_BY_TASK[task.kind],
            best_epoch=fit.best_epoch,
            epochs_run=len(fit.history),
            stopped_early=fit.stopped_early,
            groups=TrainingGroups(attributes=list(groups.attributes), labels=list(groups.labels)),
            validation=ValidationSummary.model_validate(selection.validation),
            history=clean([asdict(r) for r in fit.history]),
            pairwise_eo_extension=extension,
            terms=[TermRecord(name=t.name, weight=t.weight, settings=t.settings()) for t in cfg.terms],
        ),
    )


def cohort_predictions(
    arrays: CohortArrays,
    index: np.ndarray,
    scores: np.ndarray,
    decision: float | Decision,
    exit_thresholds: Sequence[float | None],
    exit_costs: Sequence[float],
) -> AnyPredictionSet:
    """The engine's input for a model's probabilities ``scores`` (samples × exits, × width for a
    non-binary task) on the cohort rows ``index``: labels, groups and ids from the cohort, the served exit
    of each sample when the model has several exits, and each sample's patient as its cluster (its own
    item id when the cohort knows no patient), so every evaluation can be resampled, and downloaded, by
    patient. ``decision``: the binary operating threshold, else the model's ``Decision``. Training's
    test evaluation and external validation (``app.training_jobs.evaluate_job``) share it."""
    task = arrays.task
    multi = scores.shape[1] > 1
    patients, ids = arrays.patient_ids[index], arrays.item_ids[index]
    groups = {name: values[index] for name, values in arrays.attributes.items()}
    exits = exit_index(task.kind, scores, exit_thresholds) if multi else None
    costs = np.asarray(exit_costs) if multi else None
    clusters = np.array([p if p is not None else i for p, i in zip(patients, ids, strict=True)], dtype=object)
    y = arrays.labels[index].astype(np.int64)
    if not isinstance(decision, Decision):
        return PredictionSet(
            y_true=y,
            exit_scores=scores,
            groups=groups,
            threshold=decision,
            exit_index=exits,
            exit_cost=costs,
            sample_ids=ids,
            clusters=clusters,
        )
    thresholds = None if decision.thresholds is None else np.asarray(decision.thresholds, dtype=np.float64)
    if task.kind == "multiclass":
        return MulticlassPredictionSet(
            y_true=y,
            exit_probs=scores,
            classes=tuple(task.classes),
            groups=groups,
            class_thresholds=thresholds,
            exit_index=exits,
            exit_cost=costs,
            sample_ids=ids,
            clusters=clusters,
        )
    assert thresholds is not None, "a multilabel decision has per-finding thresholds (manifest-checked)"
    return MultilabelPredictionSet(
        y_true=y,
        exit_scores=scores,
        findings=tuple(task.classes),
        groups=groups,
        thresholds=thresholds,
        exit_index=exits,
        exit_cost=costs,
        sample_ids=ids,
        clusters=clusters,
    )


def run_training(
    cohort: Path | CohortArrays,
    config: TrainingConfig | Mapping[str, Any],
    work_dir: Path,
    model_dir: Path,
    version: str,
    progress: ProgressCallback = no_progress,
    should_cancel: CancelCheck = never_cancel,
    teacher_dir: Path | None = None,
) -> TrainingResult:
    """Train one model on a cohort cache folder (or opened arrays) and publish ``model_dir/version``.

    Raises ``InputError`` for a config that does not fit the cohort (before any work), ``Cancelled``
    when ``should_cancel`` answers True, ``ExportParityError`` if ONNX Runtime disagrees with PyTorch,
    ``ConflictError`` if the version folder exists. With a ``fold_plan`` the cohort's stored split is
    replaced by the plan's fold split (``app.training.folds``). ``teacher_dir``: the model folder of
    the ``mfd`` term's teacher (checked by whoever resolved it: same organisation, cohort, architecture).
    """
    arrays = load_cohort_arrays(cohort) if isinstance(cohort, Path) else cohort
    cfg = validate_training_config(config, arrays)
    arrays = arrays.with_groupings(cfg.groupings)
    if cfg.fold_plan is not None:  # a study's child: this fold's split replaces the stored one
        arrays = apply_fold_plan(arrays, cfg.fold_plan)
    groups = encode_groups(arrays.attributes, cfg.sensitive_attributes)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    task = arrays.task
    net = build_network(
        cfg.backbone,
        in_channels=arrays.channels,
        image_size=arrays.image_size,
        multi_exit=cfg.multi_exit,
        ic_pool=cfg.ic_pool_size,
        task=task,
        ic_head=cfg.ic_head,
    )
    if cfg.pretrained_weights is not None:
        load_backbone_weights(net, cfg.pretrained_weights)
    teacher = None
    if cfg.teacher_model_version_id is not None:
        if teacher_dir is None:
            message = "no teacher model folder was given for this run"
            raise InputError("the mfd teacher cannot be used", [{"field": cfg.teacher_field, "message": message}])
        teacher = load_teacher(teacher_dir, cfg, net)
    costs = exit_costs(net)
    trainer = Trainer(
        net,
        cfg,
        arrays,
        groups,
        device=select_device(cfg.device),
        work_dir=work_dir,
        progress=progress,
        should_cancel=should_cancel,
        teacher=teacher,
    )
    fit = trainer.fit()
    steps = trainer.steps_per_epoch * len(fit.history)

    def phase(name: Phase, message: str = "") -> None:
        if name != "done" and should_cancel():  # once published, the model stays
            raise Cancelled
        event = ProgressEvent(name, len(fit.history), cfg.epochs, steps, steps, message=message)
        progress(event)

    phase("select", f"best epoch {fit.best_epoch}")
    val = arrays.indices("val")
    operating_groups = encode_groups(arrays.attributes, cfg.threshold_group_attributes)
    selection = _select(
        cfg,
        task,
        arrays.labels[val],
        trainer.predict(val, amp=False),
        groups.codes[val],
        groups,
        costs,
        GroupEncoding(operating_groups.attributes, operating_groups.codes[val], operating_groups.labels),
    )

    phase("evaluate")
    test = arrays.indices("test")
    test_probs = trainer.predict(test, amp=False)
    operating = selection.decision if selection.decision is not None else selection.threshold
    assert operating is not None, "a binary selection has a threshold, any other a decision"
    predictions = cohort_predictions(arrays, test, test_probs, operating, selection.thresholds, costs.fractions)

    phase("export")
    pixels = torch.from_numpy(np.asarray(arrays.images[val[:PARITY_SAMPLES]])).permute(0, 3, 1, 2)
    parity = Normalizer(arrays.channels, torch.device("cpu"))(pixels).numpy()
    rule, policy, record = _provenance(cfg, task, selection, fit, groups, trainer)
    description = describe_model(
        net,
        backbone=cfg.backbone,
        version=version,
        method=cfg.method,
        operating_threshold=selection.threshold,
        decision=selection.decision,
        exit_thresholds=selection.thresholds,
        operating_threshold_rule=rule,
        exit_policy=policy,
        training=record,
    )
    model_path = model_dir / version
    exported = export_model(
        net, model_path, parity_images=parity, description=description, keep_weights=cfg.keep_weights
    )

    phase("done", str(model_path))
    return TrainingResult(
        model_path=model_path,
        manifest=exported.manifest,
        manifest_sha256=exported.manifest_sha256,
        history=fit.history,
        best_epoch=fit.best_epoch,
        operating_threshold=selection.threshold,
        exit_thresholds=selection.thresholds,
        validation=selection.validation,
        test_predictions=predictions,
        device=str(trainer.device),
        decision=selection.decision,
    )
