"""The operating point a report and a model card show: the threshold, the rule that chose it and
where, and every group's TPR and FPR at it (with intervals on the evaluated data; as recorded on
the split it was chosen on, with the groups a constrained rule held to its band).

The record is the manifest's ``ThresholdRule`` (a trained model, ``model_versions.thresholds.rule``)
or an audit's ``report.config.threshold_rule``; models trained before it was recorded have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.fairness.engine.thresholds import OperatingRule
from app.fairness.models import Evaluation
from app.serving.models import ModelVersion


def threshold_record(evaluation: Evaluation, model: ModelVersion | None) -> dict[str, Any] | None:
    """How the evaluation's threshold was chosen, if anyone recorded it. Pooled out-of-fold predictions
    (per-sample thresholds) have none: their decisions are the fold models', not the linked final model's."""
    config = (evaluation.report or {}).get("config", {})
    if config.get("threshold_per_sample"):
        return None
    if config.get("threshold_rule"):
        return dict(config["threshold_rule"])
    if model is not None and model.thresholds.get("rule"):
        return dict(model.thresholds["rule"])
    return None


def finding_threshold_records(evaluation: Evaluation, model: ModelVersion | None) -> dict[str, Any] | None:
    """A trained multi-label model's record of each finding's threshold choice (finding -> the
    ``ThresholdRule`` in its ``decision``); ``None`` for other reports (an audit keeps each finding's
    rule in that finding's report config)."""
    report = evaluation.report or {}
    rules = ((model.thresholds.get("decision") or {}).get("threshold_rules") if model is not None else None) or []
    if report.get("task") != "multilabel" or len(rules) != len(report.get("findings", [])):
        return None
    return {finding: dict(rule) for finding, rule in zip(report["findings"], rules, strict=True)}


def describe_rule(record: Mapping[str, Any] | None, threshold_source: str | None = None) -> str:
    """The rule in words, e.g. "best Youden's J with FPR spread ≤ 0.1 … across skin_type; band met"."""
    if record is None:
        return threshold_source or "not recorded"
    rule = record["rule"]
    words = {
        "youden": "Youden's J (largest TPR − FPR)",
        "target_specificity": f"target specificity ≥ {record.get('target_specificity')}",
        "target_sensitivity": f"target sensitivity ≥ {record.get('target_sensitivity')}",
    }.get(rule)
    if words is None:
        constraint = record["constraint"]
        band = OperatingRule.from_config(rule, constraint=constraint).band
        assert band is not None
        across = " × ".join((record.get("operating_point") or {}).get("grouped_by", [])) or "the groups"
        met = "band met" if record.get("constraint_met") else f"band NOT met: {record.get('fallback')} threshold taken"
        words = f"best Youden's J with {band.describe()} across {across}; {met}"
    where = {"val": "the validation split"}.get(record.get("chosen_on", ""), record.get("chosen_on"))
    return f"{words}, chosen on {where}"


def threshold_source(config: Mapping[str, Any]) -> str | None:
    """Where the report's threshold came from, in words, when the config says: an audit's source, or
    per-sample thresholds (pooled out-of-fold predictions, whose ``threshold`` is their median)."""
    if config.get("threshold_per_sample"):
        low, high = config["threshold_range"]
        return f"each sample at its own fold model's threshold ({low:.3f}–{high:.3f}; the median is shown)"
    source = config.get("threshold_source")
    return None if source is None else str(source)


def operating_point_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per attribute (and intersection) group: counts and TPR/FPR values with intervals at the
    report's threshold, from the served policy's evaluation."""
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    return [
        {
            "attribute": grouping["attribute"],
            "group": group["group"],
            "n_pos": group["n_pos"],
            "n_neg": group["n_neg"],
            "tpr": group["metrics"]["tpr"],
            "fpr": group["metrics"]["fpr"],
        }
        for grouping in policy["groupings"]
        for group in grouping["groups"]
    ]
