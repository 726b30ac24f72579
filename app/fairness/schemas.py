from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.core.fields import ReportIntersections, ResourceRef, SafeName, Seed
from app.fairness.report_schema import FairnessReport
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
    report: FairnessReport | None = Field(description="null while an audit job is still computing it")
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
    created_at: datetime


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
    sensitive_attributes: list[str] = Field(min_length=1)
    threshold: float | None = Field(default=None, ge=0, le=1)
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
        if (self.threshold is None) == (self.threshold_rule is None):
            raise ValueError("give exactly one of threshold and threshold_rule")
        if len(set(self.sensitive_attributes)) != len(self.sensitive_attributes):
            raise ValueError("sensitive_attributes lists a column twice")
        errors = rule_field_errors(
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
