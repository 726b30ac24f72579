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
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.cohorts.cache import CohortArrays, load_cohort_arrays
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.ranking import auc, pfd, positive_fractions
from app.fairness.engine.thresholds import exit_index, operating_threshold
from app.training.config import TrainingConfig
from app.training.data import Normalizer, normalization
from app.training.export import export_model
from app.training.groups import GroupEncoding, encode_groups
from app.training.networks import ExitCosts, MultiExitNet, build_network, exit_costs, load_backbone_weights
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
    manifest: dict[str, Any]  # the model.json written
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
    validation: dict[str, Any]


def _select(
    cfg: TrainingConfig, y: np.ndarray, probs: np.ndarray, codes: np.ndarray, groups: GroupEncoding, costs: ExitCosts
) -> _Selection:
    """Exit thresholds first (threshold-free criteria), then the operating threshold on the served scores."""
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
    threshold = operating_threshold(y, served, cfg.threshold_rule, cfg.target_specificity)
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
    return _Selection(thresholds, choice, threshold, _clean(validation))


def _manifest(
    net: MultiExitNet,
    cfg: TrainingConfig,
    cohort: CohortArrays,
    costs: ExitCosts,
    version: str,
    selection: _Selection,
    fit: FitResult,
    groups: GroupEncoding,
    trainer: Trainer,
) -> dict[str, Any]:
    """model.json minus what export adds (graphs, file hashes, parity, versions)."""
    mean, std = normalization(cohort.channels)
    size = cohort.image_size
    multi = cfg.multi_exit
    return _clean(
        {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "method": cfg.method,
            "architecture": {
                "backbone": cfg.backbone,
                "n_stages": net.backbone.n_stages,
                "n_exits": net.n_exits,
                "exit_stage": list(net.exit_stage),
                "exit_names": [f"ic{e + 1}" for e in range(net.n_exits - 1)] + ["final"],
                "ic_head": "conv3x3(C->64)+ReLU, adaptive avg-pool to p x p, conv3x3(64->32)+ReLU, "
                "global avg-pool, linear(32->1)"
                if multi
                else None,
                "ic_pool_sizes": list(net.ic_pool_sizes),
                "final_head": "global avg-pool, linear(C->1)",
                "served": "early_exit" if multi else "final_exit",
            },
            "input": {
                "name": "image",
                "layout": "NCHW",
                "dtype": "float32",
                "channels": cohort.channels,
                "height": size,
                "width": size,
            },
            "preprocessing": {
                "color_mode": "L" if cohort.channels == 1 else "RGB",
                "channel_handling": "grey input: ITU-R 601-2 luma; RGB input from grey: repeat the grey value; "
                "alpha dropped (as at ingestion)",
                "resize": {"height": size, "width": size, "method": "centre square crop, bilinear antialiased"},
                "scale": 1 / 255,
                "mean": list(mean),
                "std": list(std),
                "formula": "(pixel / 255 - mean) / std, per channel",
            },
            "output": {"kind": "logit", "probability": "sigmoid(logit)", "positive_label": 1},
            "exit_costs": list(costs.fractions),
            "exit_macs": list(costs.exit_macs),
            "operating_threshold": selection.threshold,
            "operating_threshold_rule": {
                "rule": cfg.threshold_rule,
                "target_specificity": cfg.target_specificity,
                "decision": "probability >= operating_threshold",
                "chosen_on": "val",
            },
            "exit_thresholds": selection.thresholds,
            "exit_policy": {
                "confidence": "max(p, 1 - p)",
                "rule": "leave at the first exit whose confidence >= its threshold; otherwise the final exit",
                "shared_threshold": True,
                "criterion": cfg.exit_criterion,
                "auc_tolerance": cfg.exit_auc_tolerance,
                "grid": cfg.exit_threshold_grid,
                "candidates": [asdict(c) for c in selection.choice.candidates] if selection.choice else [],
                "chosen_on": "val",
            },
            "training": {
                "config": cfg.model_dump(mode="json"),
                "seed": cfg.seed,
                "device": str(trainer.device),
                "mixed_precision": str(trainer.amp_dtype).removeprefix("torch.") if trainer.amp_dtype else None,
                "selection": SELECTION,
                "best_epoch": fit.best_epoch,
                "epochs_run": len(fit.history),
                "stopped_early": fit.stopped_early,
                "groups": {"attributes": list(groups.attributes), "labels": list(groups.labels)},
                "validation": selection.validation,
                "history": [asdict(r) for r in fit.history],
            },
        }
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
    ``ConflictError`` if the version folder exists.
    """
    arrays = load_cohort_arrays(cohort) if isinstance(cohort, Path) else cohort
    cfg = validate_training_config(config, arrays)
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
    selection = _select(cfg, arrays.labels[val], trainer.predict(val, amp=False), groups.codes[val], groups, costs)

    phase("evaluate")
    test = arrays.indices("test")
    test_probs = trainer.predict(test, amp=False)
    multi = cfg.multi_exit
    predictions = PredictionSet(
        y_true=arrays.labels[test].astype(np.int64),
        exit_scores=test_probs,
        groups={name: values[test] for name, values in arrays.attributes.items()},
        threshold=selection.threshold,
        exit_index=exit_index(test_probs, selection.thresholds) if multi else None,
        exit_cost=np.asarray(costs.fractions) if multi else None,
        sample_ids=arrays.item_ids[test],
    )

    phase("export")
    pixels = torch.from_numpy(np.asarray(arrays.images[val[:PARITY_SAMPLES]])).permute(0, 3, 1, 2)
    parity = Normalizer(arrays.channels, torch.device("cpu"))(pixels).numpy()
    metadata = _manifest(net, cfg, arrays, costs, version, selection, fit, groups, trainer)
    model_path = model_dir / version
    manifest = export_model(
        net, model_path, parity_images=parity, exit_thresholds=selection.thresholds, metadata=metadata
    )

    phase("done", str(model_path))
    return TrainingResult(
        model_path=model_path,
        manifest=manifest,
        history=fit.history,
        best_epoch=fit.best_epoch,
        operating_threshold=selection.threshold,
        exit_thresholds=selection.thresholds,
        validation=selection.validation,
        test_predictions=predictions,
        device=str(trainer.device),
    )
