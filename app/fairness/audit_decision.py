"""An audit's decision rule, applied to the parsed predictions before anything is stored: a binary
threshold (given, or a rule fitted on the audited data), multiclass argmax or per-class thresholds, or
multilabel per-finding thresholds (one for all, one each, or a rule fitted per finding on its known
rows). A fitted rule flatters the model; the record of the choice travels with the report."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.core.errors import InputError
from app.fairness.engine.groups import encode_cells
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.thresholds import InfeasibleBand, OperatingRule, choose_operating_point
from app.fairness.schemas import AuditConfig


@dataclass(frozen=True)
class AuditThreshold:
    """Where the audit's decision thresholds came from and (fitted by a rule) the record of the choice:
    every group's TPR and FPR there, and whether a constraint's band was met; a multi-label audit's
    record has one entry per finding."""

    source: str
    record: dict[str, Any] | None = None


def audit_decision(parsed: AnyPredictionSet, config: AuditConfig) -> tuple[AnyPredictionSet, AuditThreshold]:
    """The parsed predictions with the audit's decision rule applied: a binary threshold, multiclass
    argmax or class thresholds, or multilabel per-finding thresholds (given or fitted per finding)."""
    if isinstance(parsed, MulticlassPredictionSet):
        return _class_decision(parsed, config)
    if isinstance(parsed, MultilabelPredictionSet):
        return _finding_decision(parsed, config)
    if config.threshold is not None:
        return dataclasses.replace(parsed, threshold=config.threshold), AuditThreshold("given")
    fitted = _fit_threshold(parsed.y_true, parsed.exit_scores[:, 0], parsed.groups, config, "y_true")
    return dataclasses.replace(parsed, threshold=fitted.value), AuditThreshold(fitted.source, fitted.record)


def _named_exactly(given: Mapping[str, float], names: Sequence[str], field: str, what: str) -> np.ndarray:
    """``given`` in the order of ``names``; every name once, no other (else a field error naming each)."""
    problems = [{"field": f"{field}.{n}", "message": f"no threshold for {what} {n!r}"} for n in names if n not in given]
    problems += [
        {"field": f"{field}.{n}", "message": f"{n!r} is not one of the {what}s {list(names)}"}
        for n in given
        if n not in names
    ]
    if problems:
        raise InputError(f"{field} must give one threshold per {what}", problems)
    return np.array([given[n] for n in names], dtype=np.float64)


def _class_decision(
    parsed: MulticlassPredictionSet, config: AuditConfig
) -> tuple[MulticlassPredictionSet, AuditThreshold]:
    if config.class_thresholds is None:
        return parsed, AuditThreshold("argmax")
    thresholds = _named_exactly(config.class_thresholds, parsed.classes, "class_thresholds", "class")
    return dataclasses.replace(parsed, class_thresholds=thresholds), AuditThreshold(
        "argmax of p / class threshold (given)"
    )


def _finding_decision(
    parsed: MultilabelPredictionSet, config: AuditConfig
) -> tuple[MultilabelPredictionSet, AuditThreshold]:
    findings = parsed.findings
    if config.threshold is not None:
        thresholds = np.full(len(findings), config.threshold)
        return dataclasses.replace(parsed, thresholds=thresholds), AuditThreshold("given (every finding)")
    if config.finding_thresholds is not None:
        thresholds = _named_exactly(config.finding_thresholds, findings, "finding_thresholds", "finding")
        return dataclasses.replace(parsed, thresholds=thresholds), AuditThreshold("given per finding")
    fits = []
    for f, name in enumerate(findings):
        known = parsed.y_true[:, f] >= 0
        groups = {a: np.asarray(v, dtype=object)[known] for a, v in parsed.groups.items()}
        scores = parsed.exit_scores[known, 0, f]
        fits.append(_fit_threshold(parsed.y_true[known, f], scores, groups, config, f"y_true_{name}"))
    record = {name: fit.record for name, fit in zip(findings, fits, strict=True)}
    source = f"{config.threshold_rule} fitted per finding on the audited data (optimistic)"
    thresholds = np.array([fit.value for fit in fits], dtype=np.float64)
    return dataclasses.replace(parsed, thresholds=thresholds), AuditThreshold(source, record)


@dataclass(frozen=True)
class _Fitted:
    value: float
    source: str
    record: dict[str, Any]


def _fit_threshold(
    y: np.ndarray, scores: np.ndarray, groups: Mapping[str, np.ndarray], config: AuditConfig, column: str
) -> _Fitted:
    """The config's threshold rule fitted on the audited labels ``y`` (column ``column``) and scores."""
    assert config.threshold_rule is not None
    if len(y) == 0 or y.min() == y.max():
        raise InputError(
            "a threshold rule needs both classes in y_true",
            [{"column": column, "message": "only one class present; give a fixed threshold instead"}],
        )
    constraint = config.threshold_constraint
    rule = OperatingRule.from_config(
        config.threshold_rule,
        config.target_specificity,
        config.target_sensitivity,
        constraint.model_dump() if constraint else None,
    )
    names = config.threshold_group_attributes
    codes, labels = encode_cells(groups, names)
    try:
        point = choose_operating_point(y, scores, rule, codes, labels)
    except InfeasibleBand as exc:
        where = "" if column == "y_true" else f" ({column.removeprefix('y_true_')})"
        raise InputError(
            "no threshold keeps every group in the stated band on the audited data",
            [{"field": "threshold_constraint", "message": f"{exc}{where}"}],
        ) from None
    record = {
        **point.record(names),
        "constraint": constraint.model_dump(mode="json") if constraint else None,
        "chosen_on": "audited data",
    }
    how = config.threshold_rule if point.fallback is None else f"youden (band of {config.threshold_rule} not met)"
    return _Fitted(point.threshold, f"{how} fitted on the audited data (optimistic)", record)
