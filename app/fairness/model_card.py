"""Export an evaluation as a model card in the Model Card Toolkit JSON schema (v0.0.2), with the
intervals the toolkit's ``confidence_interval`` field carries, plus a ``fairaudit`` block naming what
the numbers depend on (metric definitions, model file hashes, thresholds) and how the model reached
its aliases (deployment gate outcomes, admins' override reasons). The document's shape is
typed below (``ModelCard``), as the fairness report's is (``app.fairness.report_schema``).

A multi-class card carries the groups' accuracy, balanced accuracy and macro precision/recall/F1 and
the class-averaged gaps; a multi-label card each finding's binary headline numbers (slices named
"finding: …"); both add a ``task`` block (classes or findings, decision rule, thresholds). A binary
card is unchanged: it has no ``task`` block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from app.fairness.models import Evaluation
from app.fairness.operating_point import describe_rule, operating_point_rows, threshold_record, threshold_source
from app.serving.models import AliasChange, ModelVersion

HEADLINE_GROUP_METRICS = ("auc", "pf", "tpr", "fpr", "ppv", "ece")
MULTICLASS_GROUP_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")


class ConfidenceInterval(TypedDict):
    lower_bound: str
    upper_bound: str


class PerformanceMetric(TypedDict):
    type: Annotated[str, Field(description="a metric (auc, pf, tpr, …) or a gap (pfd, eopp1, …)")]
    value: Annotated[str, Field(description="4 decimals, as the toolkit stores numbers")]
    slice: Annotated[str, Field(description='"overall", "attribute=group", or "attribute (gap)"')]
    confidence_interval: NotRequired[Annotated[ConfidenceInterval, Field(description="95 % interval, if any")]]


class CardVersion(TypedDict):
    name: str
    date: str


class Reference(TypedDict):
    reference: str


class ModelDetails(TypedDict):
    name: str
    overview: str
    version: CardVersion
    references: list[Reference]


class EvalData(TypedDict):
    name: str


class CardData(TypedDict):
    eval: EvalData


class ModelParameters(TypedDict):
    model_architecture: str | None
    data: CardData


class QuantitativeAnalysis(TypedDict):
    performance_metrics: list[PerformanceMetric]


class FairnessAssessment(TypedDict):
    group_at_risk: str
    benefits: str | None
    harms: str
    mitigation_strategy: str | None


class Limitation(TypedDict):
    description: str


class Considerations(TypedDict):
    fairness_assessment: Annotated[list[FairnessAssessment], Field(description="one per significant gap")]
    limitations: list[Limitation]


class CardRate(TypedDict):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: str


class CardGroupOperatingPoint(TypedDict):
    finding: NotRequired[Annotated[str, Field(description="multi-label models: the finding this threshold is of")]]
    attribute: Annotated[str, Field(description='"overall", an attribute, or an intersection "a×b"')]
    group: str
    n_pos: int
    n_neg: int
    tpr: Annotated[CardRate, Field(description="at the operating threshold on the evaluated data, Wilson 95 %")]
    fpr: Annotated[CardRate, Field(description="at the operating threshold on the evaluated data, Wilson 95 %")]


class CardThresholds(TypedDict):
    operating: float | None
    exits: NotRequired[
        Annotated[list[float | None], Field(description="model versions only: the early-exit threshold per exit")]
    ]
    rule: Annotated[str, Field(description="how the operating threshold was chosen, in words")]
    rule_record: Annotated[
        dict[str, Any] | None,
        Field(description="the record of the choice (model.json's operating_threshold_rule; an audit's), if any"),
    ]
    operating_point: Annotated[
        list[CardGroupOperatingPoint], Field(description="every group's TPR and FPR at the operating threshold")
    ]


class Promotion(TypedDict):
    """A move of an alias to this model, with its deployment gate's outcome and any override."""

    alias: str
    at: str
    from_model_id: str | None
    gate: Annotated[str, Field(description='pass, fail, insufficient, or "no policy"')]
    override_reason: Annotated[str | None, Field(description="the admin's reason for promoting past a failed gate")]
    api_key_id: str | None


class CardDecision(TypedDict):
    rule: Annotated[str, Field(description='"argmax", "argmax of p / class threshold" or "per-finding threshold"')]
    thresholds: Annotated[
        list[float] | None, Field(description="per class or per finding, in output order; null for argmax")
    ]


class CardTask(TypedDict):
    """What a multi-class or multi-label model predicts and how it decides."""

    kind: Literal["multiclass", "multilabel"]
    classes: Annotated[
        list[str], Field(description="the classes (multiclass) or findings (multilabel), in output order")
    ]
    decision: CardDecision


class FairAuditBlock(TypedDict):
    metric_definition_version: str
    model_files_sha256: Annotated[dict[str, str] | None, Field(description="null for an audit")]
    thresholds: CardThresholds
    promotions: Annotated[list[Promotion], Field(description="the latest alias moves to this model, newest first")]
    study_id: Annotated[
        str | None,
        Field(description="the study of this evaluation (pooled out-of-fold) or of its model (a fold's, a final one)"),
    ]
    task: NotRequired[Annotated[CardTask, Field(description="multi-class and multi-label evaluations only")]]


class ModelCard(TypedDict):
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
    entry: PerformanceMetric = {"type": kind, "value": f"{value['value']:.4f}", "slice": slice_name}
    if value.get("ci_low") is not None and value.get("ci_high") is not None:
        entry["confidence_interval"] = {
            "lower_bound": f"{value['ci_low']:.4f}",
            "upper_bound": f"{value['ci_high']:.4f}",
        }
    return entry


def _rate(value: dict[str, Any]) -> CardRate:
    return {
        "value": value.get("value"),
        "ci_low": value.get("ci_low"),
        "ci_high": value.get("ci_high"),
        "status": str(value.get("status", "ok")),
    }


def _operating_point(report: dict[str, Any], finding: str | None = None) -> list[CardGroupOperatingPoint]:
    rows: list[CardGroupOperatingPoint] = []
    for row in operating_point_rows(report) if report else []:
        point: CardGroupOperatingPoint = {
            "attribute": row["attribute"],
            "group": row["group"],
            "n_pos": row["n_pos"],
            "n_neg": row["n_neg"],
            "tpr": _rate(row["tpr"]),
            "fpr": _rate(row["fpr"]),
        }
        rows.append({"finding": finding, **point} if finding is not None else point)
    return rows


def _thresholds(evaluation: Evaluation, model: ModelVersion | None) -> CardThresholds:
    """The operating threshold, the rule that chose it and every group's operating point. A multi-class
    or multi-label model has no one operating threshold: its decision rule is in words here and in
    full in the ``task`` block; a multi-label card lists every finding's operating point."""
    report = evaluation.report or {}
    config = report.get("config", {})
    task = report.get("task")
    if task == "multiclass":
        largest = "p / class threshold" if config["class_thresholds"] else "probability"
        thresholds: CardThresholds = {
            "operating": None,
            "rule": f"the class with the largest {largest}",
            "rule_record": None,
            "operating_point": [],
        }
    elif task == "multilabel":
        thresholds = {
            "operating": None,
            "rule": "; ".join(
                f"{name}: {describe_rule(sub['config'].get('threshold_rule'), threshold_source(sub['config']))}"
                for name, sub in report["per_finding"].items()
            ),
            "rule_record": None,
            "operating_point": [
                point for name, sub in report["per_finding"].items() for point in _operating_point(sub, name)
            ],
        }
    else:
        record = threshold_record(evaluation, model)
        pooled = bool(config.get("threshold_per_sample"))  # the fold models' median, not the linked model's
        thresholds = {
            "operating": config.get("threshold") if model is None or pooled else model.thresholds["operating"],
            "rule": describe_rule(record, threshold_source(config)),
            "rule_record": record,
            "operating_point": _operating_point(report),
        }
    if model:
        thresholds["exits"] = model.thresholds["exits"]
    return thresholds


def _task(report: dict[str, Any]) -> CardTask | None:
    """Classes or findings and the decision rule, from the report (null for a binary one)."""
    if report.get("task") == "multiclass":
        config = report["config"]
        return {
            "kind": "multiclass",
            "classes": list(report["classes"]),
            "decision": {"rule": config["decision"], "thresholds": config["class_thresholds"]},
        }
    if report.get("task") == "multilabel":
        return {
            "kind": "multilabel",
            "classes": list(report["findings"]),
            "decision": {
                "rule": "per-finding threshold",
                "thresholds": [report["per_finding"][name]["config"]["threshold"] for name in report["findings"]],
            },
        }
    return None


def _performance(report: dict[str, Any], names: Sequence[str], prefix: str = "") -> list[PerformanceMetric]:
    """Every group's ``names`` metrics and every attribute's gaps, of the served policy."""
    policy = next((e for e in report.get("evaluations", []) if e["exit"] == "policy"), None)
    metrics: list[PerformanceMetric] = []
    for grouping in (policy or {}).get("groupings", []):
        for group in grouping["groups"]:
            slice_name = "overall" if grouping["kind"] == "overall" else f"{grouping['attribute']}={group['group']}"
            for name in names:
                entry = _metric(name, group["metrics"][name], prefix + slice_name)
                if entry:
                    metrics.append(entry)
        for gap, value in grouping.get("gaps", {}).items():
            entry = _metric(gap, value, f"{prefix}{grouping['attribute']} (gap)")
            if entry:
                metrics.append(entry)
    return metrics


def _assessments(findings: Sequence[dict[str, Any]], flag: str, prefix: str = "") -> list[FairnessAssessment]:
    """One per finding whose ``flag`` is set: significant (binary) or an interval above 0 (multiclass)."""
    return [
        {
            "group_at_risk": f.get("attribute", ""),
            "benefits": None,
            "harms": f"{prefix}{f.get('gap')} = {f.get('value')}",
            "mitigation_strategy": None,
        }
        for f in findings
        if f.get(flag)
    ]


def _quantities(report: dict[str, Any]) -> tuple[list[PerformanceMetric], Considerations]:
    """The card's numbers and considerations, per task."""
    if report.get("task") == "multilabel":
        metrics, considerations = [], Considerations(fairness_assessment=[], limitations=[])
        for name, sub in report["per_finding"].items():
            metrics += _performance(sub, HEADLINE_GROUP_METRICS, f"{name}: ")
            considerations["fairness_assessment"] += _assessments(
                sub["summary"]["findings"], "significant", f"{name}: "
            )
            considerations["limitations"].append({"description": f"{name}: {sub['summary']['verdict']}"})
        return metrics, considerations
    multiclass = report.get("task") == "multiclass"
    summary = report.get("summary", {})
    metrics = _performance(report, MULTICLASS_GROUP_METRICS if multiclass else HEADLINE_GROUP_METRICS)
    return metrics, {
        "fairness_assessment": _assessments(
            summary.get("findings", []), "excludes_zero" if multiclass else "significant"
        ),
        "limitations": [{"description": summary.get("verdict", "")}],
    }


def model_card(
    evaluation: Evaluation,
    model: ModelVersion | None,
    promotions: Sequence[AliasChange] = (),
    *,
    study_id: str | None = None,
) -> ModelCard:
    """The card; ``study_id``: the study the evaluation or its model is of (its report is referenced)."""
    report = evaluation.report or {}
    references: list[Reference] = [{"reference": f"/v1/evaluations/{evaluation.id}/report"}]
    if study_id is not None:
        references.append({"reference": f"/v1/studies/{study_id}/report"})
    metrics, considerations = _quantities(report)
    fairaudit: FairAuditBlock = {
        "metric_definition_version": evaluation.metric_definition_version,
        "model_files_sha256": dict(model.files) if model else None,
        "thresholds": _thresholds(evaluation, model),
        "promotions": [
            {
                "alias": p.alias,
                "at": p.created_at.isoformat(),
                "from_model_id": p.from_model_id,
                "gate": p.gate,
                "override_reason": p.override_reason,
                "api_key_id": p.api_key_id,
            }
            for p in promotions
        ],
        "study_id": study_id,
    }
    task = _task(report)
    if task is not None:
        fairaudit["task"] = task
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
            "references": references,
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
        "considerations": considerations,
        "fairaudit": fairaudit,
    }
