"""Export an evaluation as a model card in the Model Card Toolkit JSON schema (v0.0.2), with the
intervals the toolkit's ``confidence_interval`` field carries, plus a ``fairaudit`` block naming
what the numbers depend on (metric definitions, model file hashes, thresholds)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.fairness.models import Evaluation
from app.fairness.report_schema import absent_when_none
from app.serving.models import ModelVersion

HEADLINE_GROUP_METRICS = ("auc", "pf", "tpr", "fpr", "ppv", "ece")


class ConfidenceInterval(BaseModel):
    lower_bound: str
    upper_bound: str


class PerformanceMetric(BaseModel):
    type: str = Field(description="a metric (auc, pf, tpr, …) or a gap (pfd, eopp1, …)")
    value: str = Field(description="4 decimals, as the toolkit stores numbers")
    slice: str = Field(description='"overall", "attribute=group", or "attribute (gap)"')
    confidence_interval: ConfidenceInterval | None = absent_when_none("95 % interval, when the report has one")


class CardVersion(BaseModel):
    name: str
    date: str


class Reference(BaseModel):
    reference: str


class ModelDetails(BaseModel):
    name: str
    overview: str
    version: CardVersion
    references: list[Reference]


class EvalData(BaseModel):
    name: str


class CardData(BaseModel):
    eval: EvalData


class ModelParameters(BaseModel):
    model_architecture: str | None
    data: CardData


class QuantitativeAnalysis(BaseModel):
    performance_metrics: list[PerformanceMetric]


class FairnessAssessment(BaseModel):
    group_at_risk: str
    benefits: str | None
    harms: str
    mitigation_strategy: str | None


class Limitation(BaseModel):
    description: str


class Considerations(BaseModel):
    fairness_assessment: list[FairnessAssessment] = Field(description="one per significant gap of the report")
    limitations: list[Limitation]


class CardThresholds(BaseModel):
    operating: float | None
    exits: list[float | None] | None = absent_when_none("model versions only: the early-exit threshold per exit")


class FairAuditBlock(BaseModel):
    metric_definition_version: str
    model_files_sha256: dict[str, str] | None = Field(description="null for an audit of external predictions")
    thresholds: CardThresholds


class ModelCard(BaseModel):
    """A Model Card Toolkit v0.0.2 document of one evaluation."""

    schema_version: str
    model_details: ModelDetails
    model_parameters: ModelParameters
    quantitative_analysis: QuantitativeAnalysis
    considerations: Considerations
    fairaudit: FairAuditBlock


def _metric(kind: str, value: dict[str, Any], slice_name: str) -> PerformanceMetric | None:
    if value.get("value") is None:
        return None
    interval = None
    if value.get("ci_low") is not None and value.get("ci_high") is not None:
        interval = ConfidenceInterval(lower_bound=f"{value['ci_low']:.4f}", upper_bound=f"{value['ci_high']:.4f}")
    return PerformanceMetric(type=kind, value=f"{value['value']:.4f}", slice=slice_name, confidence_interval=interval)


def model_card(evaluation: Evaluation, model: ModelVersion | None) -> ModelCard:
    report = evaluation.report or {}
    policy = next((e for e in report.get("evaluations", []) if e["exit"] == "policy"), None)
    metrics: list[PerformanceMetric] = []
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
    return ModelCard(
        schema_version="0.0.2",
        model_details=ModelDetails(
            name=model.id if model else evaluation.name,
            overview=f"Fairness evaluation {evaluation.id} ({evaluation.kind}) of "
            f"{model.method + ' / ' + model.backbone if model else 'externally produced predictions'}.",
            version=CardVersion(name=model.id if model else evaluation.id, date=evaluation.created_at.isoformat()),
            references=[Reference(reference=f"/v1/evaluations/{evaluation.id}/report")],
        ),
        model_parameters=ModelParameters(
            model_architecture=model.backbone if model else None,
            data=CardData(
                eval=EvalData(
                    name=f"cohort {evaluation.cohort_id}, split {evaluation.split}"
                    if evaluation.cohort_id
                    else evaluation.name
                )
            ),
        ),
        quantitative_analysis=QuantitativeAnalysis(performance_metrics=metrics),
        considerations=Considerations(
            fairness_assessment=[
                FairnessAssessment(
                    group_at_risk=f["attribute"],
                    benefits=None,
                    harms=f"{f['gap']} = {f['value']}",
                    mitigation_strategy=None,
                )
                for f in summary.get("findings", [])
                if f.get("significant")
            ],
            limitations=[Limitation(description=summary.get("verdict", ""))],
        ),
        fairaudit=FairAuditBlock(
            metric_definition_version=evaluation.metric_definition_version,
            model_files_sha256=dict(model.files) if model else None,
            thresholds=CardThresholds.model_validate(model.thresholds)
            if model
            else CardThresholds(operating=report.get("config", {}).get("threshold")),
        ),
    )
