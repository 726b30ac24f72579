"""How the served probabilities become a decision, chosen on the validation split after the exit
thresholds (docs/methods.md, training): the operating threshold of a binary model, the decision of a
multiclass or multilabel one (``app.modelpkg.manifest.Decision``).

Binary: the configured rule (``app.fairness.engine.thresholds``). Multiclass: argmax, or with
``class_thresholds`` the rule ``argmax_c p_c / t_c`` with each ``t_c`` from the grid 0.05, 0.10 …
0.95, fitted by coordinate search to maximise validation macro F1: start at t = 0.5 everywhere (argmax),
then for each class in turn take the grid value with the highest macro F1 with the others held (a tie
keeps the current value), two passes. Multilabel: one threshold per finding by the configured rule on
the samples whose finding label is known.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.core.errors import InputError
from app.fairness.engine.thresholds import InfeasibleBand, OperatingPoint, OperatingRule, choose_operating_point
from app.modelpkg.manifest import Decision
from app.modelpkg.task import Task, multiclass_decision
from app.modelpkg.threshold_rule import ThresholdRule
from app.training.config import TrainingConfig
from app.training.groups import GroupEncoding
from app.training.task_metrics import macro_f1

CLASS_THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
CLASS_THRESHOLD_PASSES = 2


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, numpy values become Python ones."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def operating_point(
    cfg: TrainingConfig, y: np.ndarray, served: np.ndarray, groups: GroupEncoding, what: str = ""
) -> OperatingPoint:
    """The configured rule on served validation scores; ``groups`` (validation codes) are the ones
    reported and, for the constrained rule, held to its band. A band no threshold meets fails the run
    unless ``on_infeasible`` is ``youden``: a model outside its stated band is never published silently.
    ``what`` names the finding a multilabel threshold is for."""
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
            f"no operating threshold keeps every group in the stated band on the validation split{what}",
            [{"field": "threshold_constraint", "message": str(exc)}],
        ) from None


def threshold_rule_record(cfg: TrainingConfig, point: OperatingPoint) -> ThresholdRule:
    """``model.json``'s record of how a threshold was chosen."""
    return ThresholdRule.model_validate(
        clean(
            {
                **point.record(cfg.threshold_group_attributes),
                "constraint": cfg.threshold_constraint.model_dump() if cfg.threshold_constraint else None,
            }
        )
    )


def fit_class_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class thresholds maximising validation macro F1 under ``argmax p / t`` (module docstring)."""
    k = probs.shape[1]
    y = y.astype(np.int64)
    thresholds = np.full(k, 0.5)
    best = macro_f1(y, multiclass_decision(probs, thresholds), k)
    for _ in range(CLASS_THRESHOLD_PASSES):
        for c in range(k):
            for t in CLASS_THRESHOLD_GRID:
                trial = thresholds.copy()
                trial[c] = t
                score = macro_f1(y, multiclass_decision(probs, trial), k)
                if score > best + 1e-12:
                    best, thresholds = score, trial
    return thresholds


def multiclass_decision_record(cfg: TrainingConfig, y: np.ndarray, served: np.ndarray) -> Decision:
    if not cfg.class_thresholds:
        return Decision(rule="argmax", thresholds=None)
    return Decision(rule="argmax of p / class threshold", thresholds=fit_class_thresholds(y, served).tolist())


def multilabel_decision_record(
    cfg: TrainingConfig, task: Task, y: np.ndarray, served: np.ndarray, groups: GroupEncoding
) -> Decision:
    """One threshold per finding by the configured rule, on the samples whose label is known."""
    thresholds, rules = [], []
    for f, name in enumerate(task.classes):
        known = y[:, f] >= 0
        codes = GroupEncoding(groups.attributes, groups.codes[known], groups.labels)
        point = operating_point(cfg, y[known, f].astype(np.int64), served[known, f], codes, f" for {name!r}")
        thresholds.append(float(np.clip(point.threshold, 0.0, 1.0)))
        rules.append(threshold_rule_record(cfg, point))
    return Decision(rule="per-finding threshold", thresholds=thresholds, threshold_rules=rules)
