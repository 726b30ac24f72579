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
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.ranking import auc, pfd, positive_fractions
from app.fairness.engine.thresholds import (
    InfeasibleBand,
    OperatingPoint,
    OperatingRule,
    choose_operating_point,
    exit_index,
)
from app.modelpkg.manifest import (
    ExitPolicy,
    ModelManifest,
    TrainingGroups,
    TrainingRecord,
    ValidationSummary,
)
from app.modelpkg.threshold_rule import ThresholdRule
from app.training.config import TrainingConfig
from app.training.data import Normalizer
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
from app.training.thresholds import ExitChoice, choose_exit_thresholds
from app.training.trainer import EpochRecord, FitResult, Trainer, select_device
from app.training.validation import validate_training_config

SELECTION = "highest validation AUC of the final exit (ties: earlier epoch)"
PARITY_SAMPLES = 8


@dataclass(frozen=True)
class TrainingResult:
    model_path: Path  # <model_dir>/<version>, holding the ONNX graphs and model.json
    manifest: ModelManifest  # the model.json written
    manifest_sha256: str  # of model.json's bytes
    history: list[EpochRecord]
    best_epoch: int
    operating_threshold: float
    exit_thresholds: list[float | None]  # per exit; the final head's is None; all None: no early exit
    validation: dict[str, Any]  # metrics of the served output on the validation split
    test_predictions: PredictionSet
    device: str


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, numpy values become Python ones."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _served(probs: np.ndarray, thresholds: list[float | None]) -> tuple[np.ndarray, np.ndarray]:
    idx = exit_index(probs, thresholds)
    return probs[np.arange(len(probs)), idx], idx


@dataclass(frozen=True)
class _Selection:
    """What is frozen with the model, all chosen on the validation split."""

    thresholds: list[float | None]
    choice: ExitChoice | None
    threshold: float
    point: OperatingPoint
    validation: dict[str, Any]


def _operating_point(cfg: TrainingConfig, y: np.ndarray, served: np.ndarray, groups: GroupEncoding) -> OperatingPoint:
    """The configured rule on the served validation scores; ``groups`` (validation codes) are the ones
    reported and, for the constrained rule, held to its band. A band no threshold meets fails the run
    unless ``on_infeasible`` is ``youden``: a model outside its stated band is never published silently."""
    constraint = cfg.threshold_constraint
    rule = OperatingRule.from_config(
        cfg.threshold_rule,
        cfg.target_specificity,
        cfg.target_sensitivity,
        constraint.model_dump() if constraint else None,
    )
    try:
        return choose_operating_point(y, served, rule, groups.codes, groups.labels)
    except InfeasibleBand as exc:
        raise InputError(
            "no operating threshold keeps every group in the stated band on the validation split",
            [{"field": "threshold_constraint", "message": str(exc)}],
        ) from None


def _select(
    cfg: TrainingConfig,
    y: np.ndarray,
    probs: np.ndarray,
    codes: np.ndarray,
    groups: GroupEncoding,
    costs: ExitCosts,
    threshold_groups: GroupEncoding,
) -> _Selection:
    """Exit thresholds first (threshold-free criteria), then the operating threshold on the served scores.

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
        )
        thresholds = choice.thresholds
    served, idx = _served(probs, thresholds)
    point = _operating_point(cfg, y, served, threshold_groups)
    threshold = point.threshold
    pf = positive_fractions(y, served, codes, groups.n_groups)
    pred = served >= threshold
    validation = {
        "auc": auc(y, served),
        "auc_final_exit": auc(y, probs[:, -1]),
        "exit_auc": [auc(y, probs[:, e]) for e in range(probs.shape[1])],
        "pf": dict(zip(groups.labels, pf.tolist(), strict=True)),
        "pfd": pfd(pf),
        "tpr": float(pred[y == 1].mean()),
        "fpr": float(pred[y == 0].mean()),
        "exit_rate": np.bincount(idx, minlength=probs.shape[1]) / len(idx),
        "mean_compute": float(np.asarray(costs.fractions)[idx].mean()),
    }
    return _Selection(thresholds, choice, threshold, point, _clean(validation))


def _provenance(
    cfg: TrainingConfig, selection: _Selection, fit: FitResult, groups: GroupEncoding, trainer: Trainer
) -> tuple[ThresholdRule, ExitPolicy, TrainingRecord]:
    """The manifest's record of how the weights and thresholds were chosen."""
    return (
        ThresholdRule.model_validate(
            _clean(
                {
                    **selection.point.record(cfg.threshold_group_attributes),
                    "constraint": cfg.threshold_constraint.model_dump() if cfg.threshold_constraint else None,
                }
            )
        ),
        ExitPolicy(
            criterion=cfg.exit_criterion,
            auc_tolerance=cfg.exit_auc_tolerance,
            grid=cfg.exit_threshold_grid,
            candidates=_clean([asdict(c) for c in selection.choice.candidates] if selection.choice else []),
        ),
        TrainingRecord(
            config=cfg.model_dump(mode="json"),
            seed=cfg.seed,
            device=str(trainer.device),
            mixed_precision=str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype else None,
            selection=SELECTION,
            best_epoch=fit.best_epoch,
            epochs_run=len(fit.history),
            stopped_early=fit.stopped_early,
            groups=TrainingGroups(attributes=list(groups.attributes), labels=list(groups.labels)),
            validation=ValidationSummary.model_validate(selection.validation),
            history=_clean([asdict(r) for r in fit.history]),
        ),
    )


def cohort_predictions(
    arrays: CohortArrays,
    index: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    exit_thresholds: Sequence[float | None],
    exit_costs: Sequence[float],
) -> PredictionSet:
    """The engine's input for a model's ``scores`` (samples × exits) on the cohort rows ``index``: labels,
    groups and ids from the cohort, the served exit of each sample when the model has several exits, and
    each sample's patient as its cluster (its own item id when the cohort knows no patient), so every
    evaluation can be resampled, and downloaded, by patient. Training's test evaluation and external
    validation (``app.training_jobs.evaluate_job``) share it."""
    multi = scores.shape[1] > 1
    patients, ids = arrays.patient_ids[index], arrays.item_ids[index]
    clusters = np.array([p if p is not None else i for p, i in zip(patients, ids, strict=True)], dtype=object)
    return PredictionSet(
        y_true=arrays.labels[index].astype(np.int64),
        exit_scores=scores,
        groups={name: values[index] for name, values in arrays.attributes.items()},
        threshold=threshold,
        exit_index=exit_index(scores, exit_thresholds) if multi else None,
        exit_cost=np.asarray(exit_costs) if multi else None,
        sample_ids=arrays.item_ids[index],
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
) -> TrainingResult:
    """Train one model on a cohort cache folder (or opened arrays) and publish ``model_dir/version``.

    Raises ``InputError`` for a config that does not fit the cohort (before any work), ``Cancelled``
    when ``should_cancel`` answers True, ``ExportParityError`` if ONNX Runtime disagrees with PyTorch,
    ``ConflictError`` if the version folder exists. With a ``fold_plan`` the cohort's stored split is
    replaced by the plan's fold split (``app.training.folds``).
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
    net = build_network(
        cfg.backbone,
        in_channels=arrays.channels,
        image_size=arrays.image_size,
        multi_exit=cfg.multi_exit,
        ic_pool=cfg.ic_pool_size,
    )
    if cfg.pretrained_weights is not None:
        load_backbone_weights(net, cfg.pretrained_weights)
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
    predictions = cohort_predictions(
        arrays, test, test_probs, selection.threshold, selection.thresholds, costs.fractions
    )

    phase("export")
    pixels = torch.from_numpy(np.asarray(arrays.images[val[:PARITY_SAMPLES]])).permute(0, 3, 1, 2)
    parity = Normalizer(arrays.channels, torch.device("cpu"))(pixels).numpy()
    rule, policy, record = _provenance(cfg, selection, fit, groups, trainer)
    description = describe_model(
        net,
        backbone=cfg.backbone,
        version=version,
        method=cfg.method,
        operating_threshold=selection.threshold,
        exit_thresholds=selection.thresholds,
        operating_threshold_rule=rule,
        exit_policy=policy,
        training=record,
    )
    model_path = model_dir / version
    exported = export_model(net, model_path, parity_images=parity, description=description)

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
    )
