"""Export an evaluation as a model card in the Model Card Toolkit JSON schema (v0.0.2), with the
intervals the toolkit's ``confidence_interval`` field carries."""

from __future__ import annotations

from typing import Any

from app.fairness.models import Evaluation
from app.serving.models import ModelVersion

HEADLINE_GROUP_METRICS = ("auc", "pf", "tpr", "fpr", "ppv", "ece")


def _metric(kind: str, value: dict[str, Any], slice_name: str) -> dict[str, Any] | None:
    if value.get("value") is None:
        return None
    entry: dict[str, Any] = {"type": kind, "value": f"{value['value']:.4f}", "slice": slice_name}
    if value.get("ci_low") is not None and value.get("ci_high") is not None:
        entry["confidence_interval"] = {
            "lower_bound": f"{value['ci_low']:.4f}",
            "upper_bound": f"{value['ci_high']:.4f}",
        }
    return entry


def model_card(evaluation: Evaluation, model: ModelVersion | None) -> dict[str, Any]:
    report = evaluation.report or {}
    policy = next((e for e in report.get("evaluations", []) if e["exit"] == "policy"), None)
    metrics: list[dict[str, Any]] = []
    for grouping in (policy or {}).get("groupings", []):
        for group in grouping["groups"]:
            slice_name = "overall" if grouping["kind"] == "overall" else f"{grouping['attribute']}={group['group']}"
            for name in HEADLINE_GROUP_METRICS:
                entry = _metric(name, group["metrics"][name], slice_name)
                if entry:
                    metrics.append(entry)
        for gap, value in grouping.get("gaps", {}).items():
            entry = _metric(gap, value, f"{grouping['attribute']} (gap)")
            if entry:
                metrics.append(entry)
    summary = report.get("summary", {})
    return {
        "schema_version": "0.0.2",
        "model_details": {
            "name": model.id if model else evaluation.name,
            "overview": f"Fairness evaluation {evaluation.id} ({evaluation.kind}) of "
            f"{model.method + ' / ' + model.backbone if model else 'externally produced predictions'}.",
            "version": {
                "name": model.id if model else evaluation.id,
                "date": evaluation.created_at.isoformat(),
            },
            "references": [{"reference": f"/v1/evaluations/{evaluation.id}/report"}],
        },
        "model_parameters": {
            "model_architecture": model.backbone if model else None,
            "data": {
                "eval": {
                    "name": f"cohort {evaluation.cohort_id}, split {evaluation.split}"
                    if evaluation.cohort_id
                    else evaluation.name
                }
            },
        },
        "quantitative_analysis": {"performance_metrics": metrics},
        "considerations": {
            "fairness_assessment": [
                {
                    "group_at_risk": f.get("attribute"),
                    "benefits": None,
                    "harms": f"{f.get('gap')} = {f.get('value')}",
                    "mitigation_strategy": None,
                }
                for f in summary.get("findings", [])
                if f.get("significant")
            ],
            "limitations": [{"description": summary.get("verdict", "")}],
        },
        "fairaudit": {
            "metric_definition_version": evaluation.metric_definition_version,
            "model_files_sha256": dict(model.files) if model else None,
            "thresholds": dict(model.thresholds) if model else {"operating": report.get("config", {}).get("threshold")},
        },
    }
