"""Typed shapes of the fairness report and the paired comparison, as the API returns them.

The engine (``app.fairness.engine``) builds both as plain JSON-ready dicts (it stays free of web and
schema code); these models describe those dicts field by field, so the OpenAPI document says what a
client receives and a response that drifted from the engine fails loudly in the tests instead of
reaching a client. ``docs/report-format.md`` explains every field.

A key the engine leaves out (``gaps`` of the overall grouping, ``curves`` outside the policy
evaluation, ``threshold_source`` outside audits) stays left out when the model is serialised: it is
declared with ``absent_when_none``, not sent as ``null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Status = Literal["ok", "undefined", "insufficient"]
GroupingKind = Literal["overall", "attribute", "intersection"]
ExitKey = Annotated[int | Literal["policy"], Field(description='0-based exit index, or "policy" (the early-exit rule)')]


def _is_none(value: Any) -> bool:
    return value is None


def absent_when_none(description: str) -> Any:
    """A field the engine sometimes leaves out: optional in the schema and omitted, not ``null``, on output."""
    return Field(default=None, exclude_if=_is_none, description=description)


class Value(BaseModel):
    """A number with its 95 % interval and the status that says why a missing one is missing."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    n: int = Field(description="the status denominator, e.g. min(n_pos, n_neg) for auc, n_pos for tpr")


class GroupMetrics(BaseModel):
    prevalence: Value
    auc: Value
    pf: Value = Field(description="AUC of the group's positives against all negatives of the population")
    tpr: Value
    fpr: Value
    tnr: Value
    fnr: Value
    ppv: Value
    npv: Value
    accuracy: Value
    selection_rate: Value
    ece: Value
    brier: Value


class LeftOut(BaseModel):
    group: str
    status: Status


class Gap(BaseModel):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    p_value: float | None = Field(description="smallest Holm-adjusted p of the gap's group-vs-rest tests")
    groups_used: list[str]
    left_out: list[LeftOut] = Field(description="groups not ok for a metric the gap uses, and why")


class Gaps(BaseModel):
    pfd: Gap
    auc_gap: Gap
    worst_group_auc: Gap
    eopp1: Gap
    eopp0: Gap
    eodd: Gap
    demographic_parity_difference: Gap
    demographic_parity_ratio: Gap
    equalized_odds_difference: Gap
    equalized_odds_ratio: Gap
    equal_opportunity_difference: Gap
    equal_opportunity_ratio: Gap


class GroupTest(BaseModel):
    """One group against the rest of its grouping."""

    group: str
    difference: float | None = Field(description="group minus rest")
    statistic: float | None
    p_value: float | None
    p_holm: float | None


class Tests(BaseModel):
    tpr: list[GroupTest]
    fpr: list[GroupTest]
    selection_rate: list[GroupTest]
    pf: list[GroupTest]


class FairlearnRates(BaseModel):
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    tnr: float | None
    fnr: float | None


class FairlearnDisparities(BaseModel):
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    equalized_odds_difference_mean: float | None
    equalized_odds_ratio: float | None
    equalized_odds_ratio_mean: float | None
    equal_opportunity_difference: float | None
    equal_opportunity_ratio: float | None


class Fairlearn(BaseModel):
    """Fairlearn 0.15's own values, reproduced from counts (its conventions, not the report's)."""

    by_group: dict[str, FairlearnRates]
    overall: FairlearnRates
    between_groups: FairlearnDisparities
    to_overall: FairlearnDisparities


class RocCurve(BaseModel):
    fpr: list[float]
    tpr: list[float]


class ReliabilityBin(BaseModel):
    bin: int
    count: int
    mean_score: float
    observed: float


class Curves(BaseModel):
    roc: dict[str, RocCurve | None] = Field(description="per group; null for a group without both classes")
    reliability: dict[str, list[ReliabilityBin]] = Field(description="per group, its non-empty ECE bins")


class GroupResult(BaseModel):
    group: str
    levels: dict[str, str] = Field(description="attribute -> value; {} for the overall group")
    n: int
    n_pos: int
    n_neg: int
    metrics: GroupMetrics


class GroupingResult(BaseModel):
    attribute: str = Field(description='"overall", an attribute, or "a×b" (the intersection)')
    kind: GroupingKind
    n_missing: int = Field(description="samples whose value is missing (in no group)")
    groups: list[GroupResult]
    gaps: Gaps | None = absent_when_none("attributes and the intersection only")
    tests: Tests | None = absent_when_none("attributes and the intersection only; one test per group")
    fairlearn: Fairlearn | None = absent_when_none("attributes and the intersection only")
    curves: Curves | None = absent_when_none('the "policy" evaluation only')


class ExitEvaluation(BaseModel):
    exit: ExitKey
    groupings: list[GroupingResult]


class GroupingInfo(BaseModel):
    attribute: str
    kind: GroupingKind
    groups: list[str]
    n_missing: int


class Population(BaseModel):
    n: int
    n_pos: int
    n_neg: int
    n_exits: int


class RunConfig(BaseModel):
    """The settings a report or comparison was computed with."""

    attributes: list[str]
    intersections: bool
    n_boot: int
    seed: int
    min_count: int
    confidence: float


class ReportConfig(RunConfig):
    alpha: float
    threshold: float = Field(description="the operating threshold every y_pred used")
    ece_bins: int
    definitions: dict[str, str] = Field(description="one line per convention: pf, eodd, status, gaps, …")
    threshold_source: str | None = absent_when_none("audits only: 'given', or the rule fitted on the audited data")


class ExitGroup(BaseModel):
    group: str
    n: int
    exit_rates: list[Value] = Field(description="one per exit")
    mean_compute: Value | None = Field(description="fraction of the full network's multiply-adds; null without costs")


class ExitGrouping(BaseModel):
    attribute: str
    kind: GroupingKind
    groups: list[ExitGroup]


class Exits(BaseModel):
    n_exits: int
    exit_cost: list[float] | None = Field(description="fraction of the full network's multiply-adds per exit")
    groupings: list[ExitGrouping]


class Finding(BaseModel):
    attribute: str
    kind: Literal["attribute", "intersection"]
    gap: str
    value: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool


class SummaryMetrics(BaseModel):
    auc: Value
    tpr: Value
    fpr: Value
    ppv: Value
    ece: Value
    brier: Value


class Summary(BaseModel):
    exit: ExitKey
    alpha: float
    verdict: str
    largest_significant_gap: Finding | None
    findings: list[Finding] = Field(description="pfd, eopp1, eopp0, eodd of every attribute with status ok")
    overall: SummaryMetrics


class FairnessReport(BaseModel):
    """Per group (attribute, intersection, exit, policy): metrics with 95 % intervals and statuses; gaps
    with bootstrap intervals and Holm-adjusted p-values; a Fairlearn block; exit rates; a verdict."""

    metric_definition_version: str
    config: ReportConfig
    population: Population
    groupings: list[GroupingInfo]
    evaluations: list[ExitEvaluation] = Field(description='each exit of a multi-exit model, then "policy"')
    exits: Exits | None = Field(description="null unless the predictions carry an exit index")
    summary: Summary


class ComparedEvaluation(BaseModel):
    id: str
    name: str
    model_version_id: str | None
    cohort_id: str | None
    split: str | None


class Difference(BaseModel):
    attribute: str = Field(description='"overall", an attribute, or "a×b"')
    metric: str
    value_model: float | None
    value_reference: float | None
    difference: float | None = Field(description="model minus reference")
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None
    status: Literal["ok", "undefined"]


class PairComparison(BaseModel):
    model: str
    reference: str
    differences: list[Difference]


class Comparison(BaseModel):
    """Each evaluation against the first, on the samples they share, with paired-bootstrap intervals."""

    evaluations: list[ComparedEvaluation] = Field(description="in request order")
    metric_definition_version: str
    config: RunConfig
    reference: str = Field(description="the reference evaluation's id")
    models: list[str] = Field(description="every evaluation id, reference first")
    n_matched: int = Field(description="samples common to all evaluations")
    n_unmatched: dict[str, int] = Field(description="per evaluation, its samples left out")
    comparisons: list[PairComparison]
