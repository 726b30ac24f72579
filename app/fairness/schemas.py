from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.fields import ReportIntersections, ResourceRef, SafeName, Seed
from app.fairness.evaluation import evaluation_task
from app.fairness.models import Evaluation
from app.fairness.report_schema import AnyReport
from app.modelpkg.task import MAX_CLASSES, MAX_FINDINGS, ClassName, TaskKind
from app.modelpkg.threshold_rule import (
    RuleName,
    ThresholdConstraint,
    grouped_by,
    raise_field_errors,
    rule_field_errors,
)


class EvaluationOut(BaseModel):
    """An evaluation and its fairness report (``app.fairness.report_schema``, docs/report-format.md)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str = Field(
        description="training (test split of the training job, or a study child's held-out fold), external, "
        "audit, or study (a study's pooled out-of-fold predictions of one config)"
    )
    name: str
    status: str
    model_version_id: str | None
    cohort_id: str | None
    job_id: str | None
    split: str | None
    metric_definition_version: str
    config: dict[str, Any]
    report: AnyReport | None = Field(
        description="null while an audit job is still computing it; a binary, multiclass or multilabel report"
    )
    model_files: dict[str, str] | None = Field(default=None, description="SHA-256 of each served model file")
    error: str | None = Field(default=None, description="why a running evaluation failed")
    created_at: datetime


class EvaluationSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    name: str
    status: str
    model_version_id: str | None
    cohort_id: str | None
    split: str | None
    task: TaskKind = Field(description="binary, multiclass or multilabel")
    created_at: datetime

    @classmethod
    def of(cls, evaluation: Evaluation) -> EvaluationSummary:
        fields = {name: getattr(evaluation, name) for name in cls.model_fields if name != "task"}
        return cls(**fields, task=evaluation_task(evaluation.config))


class EvaluationList(BaseModel):
    items: list[EvaluationSummary]
    next_cursor: str | None


class MetricRowOut(BaseModel):
    """One value of a report (``docs/report-format.md``, Metric rows)."""

    model_config = ConfigDict(from_attributes=True)

    attribute: str = Field(description="'overall', a sensitive attribute, or an intersection 'a×b'")
    group: str = Field(description="a group label, or '*' for a value over the groups (a gap, a Fairlearn difference)")
    exit: str = Field(description="'0' … 'k' (an exit of the model; the last is its final head) or 'policy'")
    metric: str = Field(description="e.g. auc, tpr, pfd (a gap), p_holm.tpr, fairlearn.selection_rate, exit_rate")
    value: float | None
    ci_low: float | None = Field(description="95% interval (Wilson for rates, bootstrap otherwise)")
    ci_high: float | None
    status: str = Field(description="ok, undefined (no such number for this group) or insufficient (too few)")
    n: int | None = Field(description="samples behind the value; for a gap, the number of groups it spans")


class MetricRowList(BaseModel):
    items: list[MetricRowOut]
    next_cursor: str | None


class AuditConfig(BaseModel):
    """How to audit an uploaded predictions CSV. Give a fixed ``threshold`` (the one the model uses in
    practice) or a ``threshold_rule``; a rule is then fitted on the audited data itself, which flatters
    the model and is recorded in the report's config."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {"name": "triage model, 2026 Q3", "sensitive_attributes": ["sex", "age_group"], "threshold": 0.5},
                {"name": "vendor scores", "sensitive_attributes": ["site"], "threshold_rule": "youden"},
                {
                    "name": "vendor scores, FPR within 0.05 across sites",
                    "sensitive_attributes": ["site"],
                    "threshold_rule": "constrained",
                    "threshold_constraint": {"fpr_band": 0.05, "min_tpr": 0.7, "min_group_count": 20},
                },
            ]
        },
    )

    name: SafeName
    task: TaskKind = Field(
        default="binary",
        description="binary: y_true 0/1 and y_score; multiclass: y_true a class name and score_<class> per "
        "class; multilabel: y_true_<finding> (1, 0 or blank = unknown) and score_<finding> per finding",
    )
    classes: list[ClassName] | None = Field(
        default=None,
        max_length=max(MAX_CLASSES, MAX_FINDINGS),
        description="multiclass: the classes and their order (default: the score_<class> columns in file "
        "order); multilabel: the findings (default: every y_true_<finding> column)",
    )
    class_thresholds: dict[ClassName, Annotated[float, Field(gt=0, le=1)]] | None = Field(
        default=None,
        description="multiclass only: one threshold per class; the predicted class is the largest "
        "p_c / t_c (default: argmax)",
    )
    finding_thresholds: dict[ClassName, Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None, description="multilabel only: one fixed threshold per finding (finding present when p >= t)"
    )
    sensitive_attributes: list[str] = Field(min_length=1)
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="binary: the operating threshold; multilabel: the same for every finding"
    )
    threshold_rule: RuleName | None = None
    target_specificity: float | None = Field(default=None, gt=0, lt=1, description="threshold_rule target_specificity")
    target_sensitivity: float | None = Field(default=None, gt=0, le=1, description="threshold_rule target_sensitivity")
    threshold_constraint: ThresholdConstraint | None = Field(
        default=None,
        description="threshold_rule constrained: the band every large enough group keeps; its attribute, "
        "if given, is one of sensitive_attributes (null: their intersection)",
    )
    seed: Seed = 0
    report_intersections: ReportIntersections | None = None

    @model_validator(mode="after")
    def _one_threshold(self) -> AuditConfig:
        if len(set(self.sensitive_attributes)) != len(self.sensitive_attributes):
            raise ValueError("sensitive_attributes lists a column twice")
        errors = self._task_field_errors()
        errors += rule_field_errors(
            self.threshold_rule, self.target_specificity, self.target_sensitivity, self.threshold_constraint
        )
        attribute = self.threshold_constraint.attribute if self.threshold_constraint else None
        if attribute is not None and attribute not in self.sensitive_attributes:
            errors.append(("threshold_constraint.attribute", f"{attribute!r} is not one of sensitive_attributes"))
        for i, names in enumerate(self.report_intersections or []):
            if len(set(names)) != len(names) or not set(names) <= set(self.sensitive_attributes):
                errors.append(
                    (f"report_intersections.{i}", f"{names} must name distinct attributes among sensitive_attributes")
                )
        raise_field_errors("AuditConfig", errors)
        return self

    def _task_field_errors(self) -> list[tuple[str, str]]:
        """Which decision fields fit the task: binary one threshold or rule; multiclass argmax or
        ``class_thresholds``; multilabel one threshold, ``finding_thresholds`` or a rule per finding."""
        errors: list[tuple[str, str]] = []
        given = [
            name
            for name in ("threshold", "threshold_rule", "finding_thresholds")
            if getattr(self, name) is not None and (self.task != "binary" or name != "finding_thresholds")
        ]
        if self.task == "multiclass":
            errors += [(name, "a multiclass audit decides by argmax (or class_thresholds)") for name in given]
        elif len(given) != 1:
            choices = (
                "threshold and threshold_rule"
                if self.task == "binary"
                else "threshold, finding_thresholds and threshold_rule"
            )
            errors.append(("threshold", f"give exactly one of {choices}"))
        for name, only in (("class_thresholds", "multiclass"), ("finding_thresholds", "multilabel")):
            if getattr(self, name) is not None and self.task != only:
                errors.append((name, f"applies to a {only} audit only"))
        if self.classes is not None:
            if self.task == "binary":
                errors.append(("classes", "a binary audit has no classes (y_true 1 is the positive class)"))
            elif len(set(self.classes)) != len(self.classes):
                errors.append(("classes", "lists a name twice"))
            elif self.task == "multiclass" and len(self.classes) < 2:
                errors.append(("classes", f"a multiclass audit needs at least 2 classes, got {len(self.classes)}"))
            elif self.task == "multilabel" and len(self.classes) > MAX_FINDINGS:
                errors.append(("classes", f"a multilabel audit has at most {MAX_FINDINGS} findings"))
        return errors

    @property
    def threshold_group_attributes(self) -> list[str]:
        """Whose groups the fitted operating point is reported for (and, constrained, held to the band)."""
        return grouped_by(self.threshold_constraint, self.sensitive_attributes)


class CompareRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"evaluation_ids": ["evl_reference", "evl_candidate"], "n_boot": 1000}]}
    )

    evaluation_ids: list[ResourceRef] = Field(
        min_length=2, max_length=8, description="the first is the reference; the others are compared to it"
    )
    n_boot: int = Field(default=1000, ge=100, le=10_000)
    seed: Seed = 0


class ExternalEvaluationRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"cohort_id": "coh_other_site", "split": "test"}]})

    cohort_id: ResourceRef
    split: Literal["all", "train", "val", "test"] = Field(
        default="all", description="which items of the other cohort to evaluate on"
    )
    report_intersections: ReportIntersections | None = None
