"""Typed shapes of the fairness report and the paired comparison, as the API returns them.

The engine (``app.fairness.engine``) builds both as plain JSON-ready dicts (it stays free of web and
schema code); these models describe those dicts field by field, so the OpenAPI document says what a
client receives and a response that drifted from the engine fails loudly in the tests instead of
reaching a client. ``docs/report-format.md`` explains every field.

They are ``TypedDict``s, not models: a report holds tens of thousands of values, and validating them
into dicts (what the engine, the HTML report and the model card read) costs a fraction of building
model objects. A key the engine sometimes leaves out (``gaps`` of the overall grouping, ``curves``
outside the policy evaluation, ``threshold_source`` outside audits) is ``NotRequired``: absent, never
sent as ``null``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

Status = Literal["ok", "undefined", "insufficient"]
GroupingKind = Literal["overall", "attribute", "intersection"]
ExitKey = Annotated[int | Literal["policy"], Field(description='0-based exit index, or "policy" (the early-exit rule)')]


class SkippedFold(TypedDict):
    fold: str
    status: Status


class FoldSpread(TypedDict):
    """The same metric on each fold's own samples (pooled out-of-fold predictions only)."""

    mean: float | None
    sd: Annotated[float | None, Field(description="sample sd (ddof 1); null with fewer than two folds")]
    n: Annotated[int, Field(description="folds that entered: those meeting min_count")]
    skipped: Annotated[list[SkippedFold], Field(description="folds left out, and why")]


FOLDS_NOTE = "across-fold mean ± sd; only when the predictions carry fold labels (auc, pf, tpr, fpr, gaps)"


class Value(TypedDict):
    """A number with its 95 % interval and the status that says why a missing one is missing."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    n: Annotated[int, Field(description="the status denominator, e.g. min(n_pos, n_neg) for auc, n_pos for tpr")]
    folds: NotRequired[Annotated[FoldSpread, Field(description=FOLDS_NOTE)]]


class GroupMetrics(TypedDict):
    prevalence: Value
    auc: Value
    pf: Annotated[Value, Field(description="AUC of the group's positives against all negatives of the population")]
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


class LeftOut(TypedDict):
    group: str
    status: Status


class Gap(TypedDict):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    p_value: Annotated[float | None, Field(description="smallest Holm-adjusted p of the gap's group-vs-rest tests")]
    groups_used: list[str]
    left_out: Annotated[list[LeftOut], Field(description="groups not ok for a metric the gap uses, and why")]
    folds: NotRequired[Annotated[FoldSpread, Field(description=FOLDS_NOTE)]]


class Gaps(TypedDict):
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


class GroupTest(TypedDict):
    """One group against the rest of its grouping."""

    group: str
    difference: Annotated[float | None, Field(description="group minus rest")]
    statistic: float | None
    p_value: float | None
    p_holm: float | None


class Tests(TypedDict):
    tpr: list[GroupTest]
    fpr: list[GroupTest]
    selection_rate: list[GroupTest]
    pf: list[GroupTest]


class FairlearnRates(TypedDict):
    selection_rate: float | None
    tpr: float | None
    fpr: float | None
    tnr: float | None
    fnr: float | None


class FairlearnDisparities(TypedDict):
    demographic_parity_difference: float | None
    demographic_parity_ratio: float | None
    equalized_odds_difference: float | None
    equalized_odds_difference_mean: float | None
    equalized_odds_ratio: float | None
    equalized_odds_ratio_mean: float | None
    equal_opportunity_difference: float | None
    equal_opportunity_ratio: float | None


class Fairlearn(TypedDict):
    """Fairlearn 0.15's own values, reproduced from counts (its conventions, not the report's)."""

    by_group: dict[str, FairlearnRates]
    overall: FairlearnRates
    between_groups: FairlearnDisparities
    to_overall: FairlearnDisparities


class RocCurve(TypedDict):
    fpr: list[float]
    tpr: list[float]


class ReliabilityBin(TypedDict):
    bin: int
    count: int
    mean_score: float
    observed: float


class Curves(TypedDict):
    roc: Annotated[dict[str, RocCurve | None], Field(description="per group; null for a group without both classes")]
    reliability: Annotated[dict[str, list[ReliabilityBin]], Field(description="per group, its non-empty ECE bins")]


class GroupResult(TypedDict):
    group: str
    levels: Annotated[dict[str, str], Field(description="attribute -> value; {} for the overall group")]
    n: int
    n_pos: int
    n_neg: int
    metrics: GroupMetrics


class GroupingResult(TypedDict):
    attribute: Annotated[str, Field(description='"overall", an attribute, or "a×b" (the intersection)')]
    kind: GroupingKind
    n_missing: Annotated[int, Field(description="samples whose value is missing (in no group)")]
    groups: list[GroupResult]
    gaps: NotRequired[Annotated[Gaps, Field(description="attributes and the intersection only")]]
    tests: NotRequired[Annotated[Tests, Field(description="attributes and the intersection only; one test per group")]]
    fairlearn: NotRequired[Annotated[Fairlearn, Field(description="attributes and the intersection only")]]
    curves: NotRequired[Annotated[Curves, Field(description='the "policy" evaluation only')]]


class ExitEvaluation(TypedDict):
    exit: ExitKey
    groupings: list[GroupingResult]


class GroupingInfo(TypedDict):
    attribute: str
    kind: GroupingKind
    groups: list[str]
    n_missing: int


class Population(TypedDict):
    n: int
    n_pos: int
    n_neg: int
    n_exits: int


class RunConfig(TypedDict):
    """The settings a report or comparison was computed with."""

    attributes: list[str]
    intersections: Annotated[
        list[list[str]] | bool,
        Field(
            description='the attribute lists reported as intersections ("a×b" groupings); reports stored '
            "before metric lists of intersections existed hold true (all attributes) or false"
        ),
    ]
    n_boot: int
    seed: int
    min_count: int
    confidence: float
    n_clusters: NotRequired[Annotated[int, Field(description="patients the bootstrap resampled (clustered only)")]]


class ReportConfig(RunConfig):
    alpha: float
    threshold: Annotated[
        float,
        Field(description="the operating threshold every y_pred used; with threshold_per_sample, their median"),
    ]
    threshold_per_sample: NotRequired[
        Annotated[
            bool,
            Field(
                description="pooled out-of-fold predictions: each sample was called at its own fold model's "
                "threshold (always true when present)"
            ),
        ]
    ]
    threshold_range: NotRequired[
        Annotated[list[float], Field(description="with threshold_per_sample: the lowest and highest threshold")]
    ]
    ece_bins: int
    definitions: Annotated[dict[str, str], Field(description="one line per convention: pf, eodd, status, gaps, …")]
    trained_attributes: NotRequired[
        Annotated[
            list[str],
            Field(
                description="models only: the sensitive attributes the model was trained on (their "
                "intersection, when several, is among the reported intersections)"
            ),
        ]
    ]
    threshold_source: NotRequired[
        Annotated[str, Field(description="audits only: 'given', or the rule fitted on the audited data")]
    ]
    threshold_rule: NotRequired[
        Annotated[
            dict[str, Any],
            Field(
                description="audits fitted by a rule: model.json's operating_threshold_rule record (rule, constraint, "
                "constraint_met, fallback, per-group operating_point) with chosen_on 'audited data'"
            ),
        ]
    ]
    folds: NotRequired[Annotated[list[str], Field(description="fold labels of pooled out-of-fold predictions")]]


class ExitGroup(TypedDict):
    group: str
    n: int
    exit_rates: Annotated[list[Value], Field(description="one per exit")]
    mean_compute: Annotated[
        Value | None, Field(description="fraction of the full network's multiply-adds; null without costs")
    ]


class ExitGrouping(TypedDict):
    attribute: str
    kind: GroupingKind
    groups: list[ExitGroup]


class Exits(TypedDict):
    n_exits: int
    exit_cost: Annotated[list[float] | None, Field(description="fraction of the full network's multiply-adds per exit")]
    groupings: list[ExitGrouping]


class Finding(TypedDict):
    attribute: str
    kind: Literal["attribute", "intersection"]
    gap: str
    value: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool
    left_out: NotRequired[
        Annotated[list[LeftOut], Field(description="groups the gap could not use (also in the verdict)")]
    ]


class SummaryMetrics(TypedDict):
    auc: Value
    tpr: Value
    fpr: Value
    ppv: Value
    ece: Value
    brier: Value


class Summary(TypedDict):
    exit: ExitKey
    alpha: float
    verdict: str
    largest_significant_gap: Finding | None
    findings: Annotated[list[Finding], Field(description="pfd, eopp1, eopp0, eodd of every attribute with status ok")]
    overall: SummaryMetrics


class FairnessReport(TypedDict):
    """Per group (attribute, intersection, exit, policy): metrics with 95 % intervals and statuses; gaps
    with bootstrap intervals and Holm-adjusted p-values; a Fairlearn block; exit rates; a verdict."""

    metric_definition_version: str
    config: ReportConfig
    population: Population
    groupings: list[GroupingInfo]
    evaluations: Annotated[list[ExitEvaluation], Field(description='each exit of a multi-exit model, then "policy"')]
    exits: Annotated[Exits | None, Field(description="null unless the predictions carry an exit index")]
    summary: Summary


class ComparedEvaluation(TypedDict):
    id: str
    name: str
    model_version_id: str | None
    cohort_id: str | None
    split: str | None


class Difference(TypedDict):
    attribute: Annotated[str, Field(description='"overall", an attribute, or "a×b"')]
    metric: str
    value_model: float | None
    value_reference: float | None
    difference: Annotated[float | None, Field(description="model minus reference")]
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    status: Literal["ok", "undefined"]
    p_holm: Annotated[float | None, Field(description="Holm-adjusted over the metrics of this comparison")]
    verdict: Annotated[
        Literal["better", "worse", "not distinguishable from noise"] | None,
        Field(description="this difference's part in its attribute's verdict; null outside the verdict's basis"),
    ]


class ComputeDifference(TypedDict):
    """Mean compute of the served policy: fraction of each model's own full network per sample."""

    value_model: float
    value_reference: float
    difference: Annotated[float, Field(description="model minus reference")]
    ci_low: float | None
    ci_high: float | None
    p_value: float | None


class Verdict(TypedDict):
    attribute: str
    verdict: Literal["better", "worse", "mixed", "not distinguishable from noise"]
    better: Annotated[list[str], Field(description="metrics that improved with Holm-adjusted p < alpha")]
    worse: Annotated[list[str], Field(description="metrics that worsened with Holm-adjusted p < alpha")]


class PairComparison(TypedDict):
    model: str
    reference: str
    differences: list[Difference]
    compute: NotRequired[
        Annotated[ComputeDifference | None, Field(description="null when a policy's exit costs are unknown")]
    ]
    verdicts: NotRequired[Annotated[list[Verdict], Field(description='per attribute, "overall" first (AUC)')]]


class Comparison(TypedDict):
    """Each evaluation against the first, on the samples they share, with paired-bootstrap intervals."""

    evaluations: Annotated[list[ComparedEvaluation], Field(description="in request order")]
    metric_definition_version: str
    config: RunConfig
    reference: Annotated[str, Field(description="the reference evaluation's id")]
    models: Annotated[list[str], Field(description="every evaluation id, reference first")]
    n_matched: Annotated[int, Field(description="samples common to all evaluations")]
    n_unmatched: Annotated[dict[str, int], Field(description="per evaluation, its samples left out")]
    comparisons: list[PairComparison]


# ---------------------------------------------------------------------------------------------------
# Multi-class and multi-label reports (docs/metrics.md, "Multi-class and multi-label tasks"). A binary
# report carries no ``task`` key; these two always do.
# ---------------------------------------------------------------------------------------------------


class ClassOneVsRest(TypedDict):
    """Class c against the rest within one group: c's samples are the positives, ``y_pred == c`` the
    positive decisions (argmax or the class-threshold rule). PF: the group's c-samples against every
    non-c sample of the population."""

    n_pos: int
    n_neg: int
    tpr: Value
    fpr: Value
    tnr: Value
    ppv: Value
    f1: Value
    auc: Value
    pf: Value


class MulticlassGroupMetrics(TypedDict):
    accuracy: Value
    balanced_accuracy: Annotated[Value, Field(description="mean recall over the classes present in the group")]
    macro_precision: Annotated[Value, Field(description='sklearn average="macro" over the classes present')]
    macro_recall: Value
    macro_f1: Value


class MulticlassGroupResult(TypedDict):
    group: str
    levels: dict[str, str]
    n: int
    class_counts: Annotated[list[int], Field(description="samples of each class in the group, in class order")]
    metrics: MulticlassGroupMetrics
    per_class: Annotated[dict[str, ClassOneVsRest], Field(description="class name -> one-vs-rest metrics")]
    confusion: Annotated[list[list[int]], Field(description="K×K counts: row = true class, column = predicted")]


class ClassLeftOut(TypedDict):
    class_name: str
    reason: Annotated[str, Field(description="e.g. 'no group has 10 positives of it' or the left-out groups")]


class MulticlassGap(TypedDict):
    """Mean over classes of the per-class gap (two groups: |difference|; more: max − min), over the
    classes where it is defined for at least two ok groups; interval: the stratified bootstrap
    (strata = group × class)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    classes_used: list[str]
    classes_left_out: list[ClassLeftOut]
    paper_value: Annotated[
        float | None,
        Field(description="the fair multi-exit paper's convention: an empty denominator counts as 0, all classes"),
    ]
    folds: NotRequired[Annotated[FoldSpread, Field(description=FOLDS_NOTE)]]


class MulticlassGaps(TypedDict):
    eopp0: Annotated[MulticlassGap, Field(description="mean_c gap of TNR_c")]
    eopp1: Annotated[MulticlassGap, Field(description="mean_c gap of TPR_c")]
    eodd: Annotated[MulticlassGap, Field(description="mean_c (gap of TPR_c + FPR_c) / 2")]
    accuracy_gap: Gap
    balanced_accuracy_gap: Gap
    macro_precision_diff: Annotated[Gap, Field(description='the paper\'s "Diff": max − min over groups')]
    macro_recall_diff: Gap
    macro_f1_diff: Gap


class MulticlassAverages(TypedDict):
    """The paper's "Avg": the mean over the grouping's ok groups."""

    macro_precision: Value
    macro_recall: Value
    macro_f1: Value


class ClassGaps(TypedDict):
    eopp0: Gap
    eopp1: Gap
    eodd: Gap
    pfd: Gap
    auc_gap: Gap


class MulticlassGroupingResult(TypedDict):
    attribute: str
    kind: GroupingKind
    n_missing: int
    groups: list[MulticlassGroupResult]
    gaps: NotRequired[Annotated[MulticlassGaps, Field(description="attributes and the intersection only")]]
    averages: NotRequired[Annotated[MulticlassAverages, Field(description="attributes and the intersection only")]]
    per_class_gaps: NotRequired[
        Annotated[dict[str, ClassGaps], Field(description="class -> its one-vs-rest gaps; attributes only")]
    ]
    fairlearn: NotRequired[
        Annotated[dict[str, Fairlearn], Field(description="class -> Fairlearn's one-vs-rest block; attributes only")]
    ]


class MulticlassExitEvaluation(TypedDict):
    exit: ExitKey
    groupings: list[MulticlassGroupingResult]


class MulticlassPopulation(TypedDict):
    n: int
    n_exits: int
    class_counts: Annotated[dict[str, int], Field(description="class -> samples")]


class MulticlassConfig(RunConfig):
    alpha: float
    decision: Literal["argmax", "argmax of p / class threshold"]
    class_thresholds: list[float] | None
    definitions: dict[str, str]
    folds: NotRequired[list[str]]
    trained_attributes: NotRequired[
        Annotated[list[str], Field(description="models only: the sensitive attributes the model was trained on")]
    ]
    threshold_source: NotRequired[
        Annotated[str, Field(description="audits only: 'argmax', or 'argmax of p / class threshold (given)'")]
    ]


class MulticlassFinding(TypedDict):
    attribute: str
    kind: Literal["attribute", "intersection"]
    gap: Annotated[str, Field(description="eopp1, eopp0, eodd or macro_f1_diff")]
    value: float
    ci_low: float | None
    ci_high: float | None
    excludes_zero: Annotated[bool, Field(description="the interval lies above 0")]


class MulticlassSummary(TypedDict):
    exit: ExitKey
    verdict: str
    findings: list[MulticlassFinding]
    overall: MulticlassGroupMetrics


class MulticlassReport(TypedDict):
    """A K-class model's report: per group accuracy, balanced accuracy, macro P/R/F1 and the confusion
    matrix; per class × group one-vs-rest rates; the paper's Eopp0/Eopp1/Eodd and Avg/Diff."""

    task: Literal["multiclass"]
    metric_definition_version: str
    classes: list[str]
    config: MulticlassConfig
    population: MulticlassPopulation
    groupings: list[GroupingInfo]
    evaluations: Annotated[list[MulticlassExitEvaluation], Field(description='each exit, then "policy"')]
    exits: Exits | None
    summary: MulticlassSummary


class FindingCounts(TypedDict):
    n: Annotated[int, Field(description="samples whose label of this finding is known")]
    n_pos: int
    n_neg: int
    n_unknown: int


class MultilabelPopulation(TypedDict):
    n: int
    n_exits: int
    per_finding: dict[str, FindingCounts]


class FindingSummary(TypedDict):
    finding: str
    verdict: str
    gaps: Annotated[dict[str, Finding], Field(description="pfd, eopp1, eopp0, eodd: the largest attribute gap each")]


class MultilabelReport(TypedDict):
    """Each finding's full binary report, and a table of every finding's gaps."""

    task: Literal["multilabel"]
    metric_definition_version: str
    findings: list[str]
    population: MultilabelPopulation
    per_finding: Annotated[dict[str, FairnessReport], Field(description="finding -> its binary report")]
    summary: Annotated[list[FindingSummary], Field(description="one row per finding, in finding order")]


AnyReport = FairnessReport | MulticlassReport | MultilabelReport
