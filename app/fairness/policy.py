"""The fairness policy language: checks an organisation declares, and their pure evaluation.

A check is a pydantic model (a discriminated union on ``check``) evaluated against a fairness report
(``app.fairness.report_schema.FairnessReport``, its ``"policy"`` exit: what the served model does)
and, for the checks that compare with the model currently behind an alias, a paired comparison
(``app.fairness.engine.compare``). Each result is ``pass``, ``fail`` or ``insufficient``: a check
whose numbers are missing or rest on too few patients never passes. Deployment gates run these
checks before a promotion; alert rules run them on live monitoring reports. ``docs/gates.md``
explains the language.

A multiclass report (``MulticlassReport``) has its own metrics: the fair multi-exit paper's gaps
(``eopp0``, ``eopp1``, ``eodd``, ``macro_f1_diff`` …) and per-group accuracy, balanced accuracy and macro
P/R/F1; a check naming a metric its report's task lacks is ``insufficient`` and says so. A multilabel
report is one binary report per finding: a check with ``finding`` judges that finding's, without it every
finding's, and the worst result (fail, then insufficient) stands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator, model_validator

from app.fairness.engine.significance import holm

GapName = Literal[
    "pfd",
    "auc_gap",
    "worst_group_auc",
    "eopp1",
    "eopp0",
    "eodd",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "equal_opportunity_difference",
    "equal_opportunity_ratio",
]
GroupMetricName = Literal[
    "prevalence", "auc", "pf", "tpr", "fpr", "tnr", "fnr", "ppv", "npv", "accuracy", "selection_rate", "ece", "brier"
]
MulticlassGapName = Literal[
    "eopp0",
    "eopp1",
    "eodd",
    "accuracy_gap",
    "balanced_accuracy_gap",
    "macro_precision_diff",
    "macro_recall_diff",
    "macro_f1_diff",
]
MulticlassGroupMetricName = Literal["accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1"]
AnyGroupMetric = Literal[GroupMetricName, MulticlassGroupMetricName]
ComparedMetric = Literal[
    "auc",
    "tpr",
    "fpr",
    "ece",
    "brier",
    "pfd",
    "auc_gap",
    "worst_group_auc",
    "eopp1",
    "eopp0",
    "eodd",
    "demographic_parity_difference",
    "equalized_odds_difference",
]
MulticlassComparedMetric = Literal[
    "accuracy",
    "macro_f1",
    "balanced_accuracy",
    "class_mean_eopp0",
    "class_mean_eopp1",
    "class_mean_eodd",
    "macro_f1_diff",
]
LimitMetric = Literal[GapName, GroupMetricName, MulticlassGapName, MulticlassGroupMetricName]
Outcome = Literal["pass", "fail", "insufficient"]
GAP_NAMES: frozenset[str] = frozenset(get_args(GapName))
GROUP_METRIC_NAMES: frozenset[str] = frozenset(get_args(GroupMetricName))
MULTICLASS_GAP_NAMES: frozenset[str] = frozenset(get_args(MulticlassGapName))
MULTICLASS_GROUP_METRIC_NAMES: frozenset[str] = frozenset(get_args(MulticlassGroupMetricName))
ANY_GAP_NAMES = GAP_NAMES | MULTICLASS_GAP_NAMES
ANY_GROUP_METRIC_NAMES = GROUP_METRIC_NAMES | MULTICLASS_GROUP_METRIC_NAMES
#: the metrics a check may name on each task's report (multilabel: each finding's binary report)
METRICS_OF_TASK: dict[str, frozenset[str]] = {
    "binary": GAP_NAMES | GROUP_METRIC_NAMES,
    "multiclass": MULTICLASS_GAP_NAMES | MULTICLASS_GROUP_METRIC_NAMES,
}
COMPARED_OVERALL = frozenset(  # compared on "overall", not per attribute
    {"auc", "tpr", "fpr", "ece", "brier", "accuracy", "macro_f1", "balanced_accuracy"}
)
HIGHER_IS_BETTER = frozenset(  # every other compared metric: lower is better
    {"auc", "tpr", "worst_group_auc", "accuracy", "macro_f1", "balanced_accuracy"}
)
#: the metrics a comparing check may name for each task (multilabel: each finding's binary comparison)
COMPARED_OF_TASK: dict[str, frozenset[str]] = {
    "binary": frozenset(get_args(ComparedMetric)),
    "multiclass": frozenset(get_args(MulticlassComparedMetric)),
}
OVERALL = "overall"
POLICY_EXIT = "policy"
MAX_CHECKS = 50
MAX_ATTRIBUTES = 16

Attribute = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Bound = Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=1_000_000)]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    finding: Attribute | None = Field(
        default=None,
        description="multilabel evaluations: judge this finding only (default: every finding, the worst result "
        "stands); an evaluation of another task has no findings",
    )


class _ComparingCheck(_Check):
    min_matched: Annotated[
        int, Field(ge=1, le=10_000_000, description="fewer shared samples than this: insufficient evidence")
    ] = 100


class LimitCheck(_Check):
    """A gap of an attribute (``pfd ≤ 0.05``), or an overall metric (``auc ≥ 0.8``), within bounds;
    ``on`` says whether the estimate or an end of its 95 % interval must hold."""

    check: Literal["limit"]
    metric: LimitMetric
    attribute: Attribute = Field(default=OVERALL, description='an attribute, "a×b", or "overall"')
    max: Bound | None = None
    min: Bound | None = None
    on: Literal["estimate", "ci_high", "ci_low"] = "estimate"

    @model_validator(mode="after")
    def _consistent(self) -> LimitCheck:
        if self.max is None and self.min is None:
            raise ValueError("give max, min or both")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}: no value can pass")
        if self.attribute == OVERALL and self.metric not in ANY_GROUP_METRIC_NAMES:
            raise ValueError(f"{self.metric} is a gap between groups: name the attribute it is taken over")
        if self.attribute != OVERALL and self.metric not in ANY_GAP_NAMES:
            raise ValueError(f"{self.metric} is a per-group metric: use group_band to bound it in every group")
        return self


class MinGroupCountCheck(_Check):
    """Every group of ``attribute`` has enough positives and negatives, else the evidence is insufficient
    (multiclass: of every class, one-vs-rest: its samples and the group's others)."""

    check: Literal["min_group_count"]
    attribute: Attribute
    min_positives: Count = 0
    min_negatives: Count = 0

    @model_validator(mode="after")
    def _something(self) -> MinGroupCountCheck:
        if self.min_positives == 0 and self.min_negatives == 0:
            raise ValueError("give min_positives, min_negatives or both")
        return self


class GroupBandCheck(_Check):
    """A per-group operating-point metric (e.g. FPR) of every group with at least ``min_n`` in its
    denominator stays within ``[low, high]`` and/or within ``max_spread`` of the other groups."""

    check: Literal["group_band"]
    attribute: Attribute
    metric: AnyGroupMetric
    low: Bound | None = None
    high: Bound | None = None
    max_spread: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] | None = None
    min_n: Count = 0

    @model_validator(mode="after")
    def _consistent(self) -> GroupBandCheck:
        if self.low is None and self.high is None and self.max_spread is None:
            raise ValueError("give low, high or max_spread")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}: no value can pass")
        if self.attribute == OVERALL:
            raise ValueError("a band is across the groups of an attribute, not overall")
        return self


class NoWorseningCheck(_ComparingCheck):
    """No metric is significantly worse (Holm-adjusted over ``metrics``, level ``alpha``) than under the
    model currently behind the alias, paired on the same samples. Overall metrics (auc, tpr, fpr, ece,
    brier) are compared overall; gaps over ``attribute``."""

    check: Literal["no_worsening"]
    metrics: list[ComparedMetric | MulticlassComparedMetric] = Field(
        min_length=1, max_length=len(get_args(ComparedMetric))
    )
    attribute: Attribute = OVERALL
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05

    @model_validator(mode="after")
    def _consistent(self) -> NoWorseningCheck:
        if len(set(self.metrics)) != len(self.metrics):
            raise ValueError("metrics lists a metric twice")
        gaps = [m for m in self.metrics if m not in COMPARED_OVERALL]
        if gaps and self.attribute == OVERALL:
            raise ValueError(f"{', '.join(gaps)}: gaps need the attribute they are taken over")
        return self


class MaxDropCheck(_ComparingCheck):
    """The candidate's metric falls by at most ``max_drop`` against the model behind the alias (paired);
    ``on: ci_high`` asks that even the upper end of the drop's interval does."""

    check: Literal["max_drop"]
    metric: Literal["auc", "accuracy", "macro_f1", "balanced_accuracy"] = Field(
        description="auc (binary; each finding of a multilabel model); accuracy, macro_f1 or balanced_accuracy "
        "(multiclass)"
    )
    max_drop: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    on: Literal["estimate", "ci_high"] = "estimate"


Check = Annotated[
    LimitCheck | MinGroupCountCheck | GroupBandCheck | NoWorseningCheck | MaxDropCheck, Field(discriminator="check")
]
COMPARING_CHECKS = (NoWorseningCheck, MaxDropCheck)
REPORT_CHECKS = (LimitCheck, MinGroupCountCheck, GroupBandCheck)
SEVERITY: dict[str, int] = {"pass": 0, "insufficient": 1, "fail": 2}


class Policy(BaseModel):
    """The attributes that matter and the checks that must hold. ``min_group_positives`` /
    ``min_group_negatives`` add a ``min_group_count`` check on every listed attribute."""

    model_config = ConfigDict(extra="forbid")

    attributes: list[Attribute] = Field(min_length=1, max_length=MAX_ATTRIBUTES)
    checks: list[Check] = Field(min_length=1, max_length=MAX_CHECKS)
    min_group_positives: Count = 0
    min_group_negatives: Count = 0

    @field_validator("attributes")
    @classmethod
    def _distinct(cls, attributes: list[str]) -> list[str]:
        if len(set(attributes)) != len(attributes):
            raise ValueError("lists an attribute twice")
        return attributes

    @field_validator("checks")
    @classmethod
    def _attributes_declared(cls, checks: list[Check], info: ValidationInfo) -> list[Check]:
        """A check may only name a listed attribute, ``overall``, or an intersection ``a×b`` of listed ones."""
        listed = info.data.get("attributes") or []
        for k, check in enumerate(checks):
            attribute = getattr(check, "attribute", OVERALL)
            parts = attribute.split("×")
            if attribute != OVERALL and not all(p in listed for p in parts):
                raise ValueError(
                    f"checks.{k} ({check.check}) names attribute {attribute!r}, which attributes does not list"
                )
        return checks

    def all_checks(self) -> list[Check]:
        """The declared checks, then the policy-wide group minimums as ``min_group_count`` checks."""
        if not (self.min_group_positives or self.min_group_negatives):
            return list(self.checks)
        implied: list[Check] = [
            MinGroupCountCheck(
                check="min_group_count",
                attribute=a,
                min_positives=self.min_group_positives,
                min_negatives=self.min_group_negatives,
            )
            for a in self.attributes
        ]
        return [*self.checks, *implied]

    def needs_comparison(self) -> bool:
        return any(isinstance(c, COMPARING_CHECKS) for c in self.checks)


class CheckResult(BaseModel):
    check: Check
    outcome: Outcome
    value: float | None = Field(default=None, description="the number the check judged (a gap, a spread, a drop)")
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    message: str


def missing_attributes(policy: Policy, available: Sequence[str]) -> list[dict[str, str]]:
    """Field errors for each policy attribute that ``available`` (a cohort's or a report's) lacks."""
    return [
        {"field": f"attributes.{k}", "message": f"{a!r} is not an attribute of the cohort ({', '.join(available)})"}
        for k, a in enumerate(policy.attributes)
        if a not in available
    ]


def report_attributes(report: Mapping[str, Any]) -> list[str]:
    """The groupings (attributes, intersections, ``overall``) a report of any task has; a multilabel
    report's findings share theirs."""
    if report.get("task") == "multilabel":
        findings = list(report["per_finding"].values())
        return report_attributes(findings[0]) if findings else []
    return [str(g["attribute"]) for g in report["groupings"]]


def evaluate_policy(
    policy: Policy, report: Mapping[str, Any], comparison: Mapping[str, Any] | None = None
) -> list[CheckResult]:
    return [evaluate_check(check, report, comparison) for check in policy.all_checks()]


def evaluate_check(check: Check, report: Mapping[str, Any], comparison: Mapping[str, Any] | None = None) -> CheckResult:
    """One check against a report (its ``"policy"`` exit) and, for the comparing checks, the candidate's
    paired comparison with the incumbent (one ``PairComparison``: ``differences``, model − reference;
    with ``n_matched``, the number of samples it rests on, if known)."""
    if isinstance(check, REPORT_CHECKS):
        return _on_report(check, report)
    if comparison is None:
        return _result(check, "insufficient", "no paired comparison with the model behind the alias")
    matched = comparison.get("n_matched")
    if matched is not None and matched < check.min_matched:
        message = f"only {matched} samples shared with the model behind the alias (min_matched {check.min_matched})"
        return _result(check, "insufficient", message)
    task = str(report.get("task", "binary"))
    prefixes = _finding_prefixes(check, report, task)
    if isinstance(prefixes, CheckResult):
        return prefixes
    named = check.metrics if isinstance(check, NoWorseningCheck) else [check.metric]
    foreign = [m for m in named if m not in COMPARED_OF_TASK["multiclass" if task == "multiclass" else "binary"]]
    if foreign:
        return _result(check, "insufficient", f"{', '.join(foreign)}: not compared for a {task} model")
    if isinstance(check, NoWorseningCheck):
        return _no_worsening(check, comparison, prefixes)
    return _max_drop(check, comparison, prefixes)


def _finding_prefixes(check: Check, report: Mapping[str, Any], task: str) -> list[str] | CheckResult:
    """The metric-name prefixes of a comparison to judge: ``finding:<f>:`` per finding judged of a
    multilabel comparison (``app.fairness.engine.class_compare``), else none; or why none can be."""
    if task != "multilabel":
        if check.finding is not None:
            return _result(check, "insufficient", f"names finding {check.finding!r}, but the evaluation is {task}")
        return [""]
    findings = list(report.get("findings", []))
    if check.finding is not None and check.finding not in findings:
        listed = ", ".join(findings)
        return _result(check, "insufficient", f"the evaluation has no finding {check.finding!r} (findings: {listed})")
    return [f"finding:{f}:" for f in ([check.finding] if check.finding is not None else findings)]


def _on_report(check: LimitCheck | MinGroupCountCheck | GroupBandCheck, report: Mapping[str, Any]) -> CheckResult:
    """A check on a report of any task: each finding's report of a multilabel one (the worst result)."""
    task = str(report.get("task", "binary"))
    if task == "multilabel":
        return _per_finding(check, report)
    if check.finding is not None:
        return _result(check, "insufficient", f"names finding {check.finding!r}, but the evaluation is {task}")
    return _judge(check, report, task)


def _per_finding(check: LimitCheck | MinGroupCountCheck | GroupBandCheck, report: Mapping[str, Any]) -> CheckResult:
    reports: Mapping[str, Mapping[str, Any]] = report["per_finding"]
    if check.finding is not None and check.finding not in reports:
        listed = ", ".join(reports)
        return _result(check, "insufficient", f"the evaluation has no finding {check.finding!r} (findings: {listed})")
    names = [check.finding] if check.finding is not None else list(reports)
    results = [(name, _judge(check, reports[name], "binary")) for name in names]
    name, worst = max(results, key=lambda pair: SEVERITY[pair[1].outcome])  # the first of the worst
    among = f" (the worst of {len(results)} findings)" if len(results) > 1 else ""
    return worst.model_copy(update={"message": f"finding {name}: {worst.message}{among}"})


def _judge(
    check: LimitCheck | MinGroupCountCheck | GroupBandCheck, report: Mapping[str, Any], task: str
) -> CheckResult:
    metric = getattr(check, "metric", None)
    if metric is not None and metric not in METRICS_OF_TASK[task]:
        return _result(check, "insufficient", f"{metric} is not a metric of a {task} report")
    if isinstance(check, LimitCheck):
        return _limit(check, report)
    if isinstance(check, MinGroupCountCheck):
        return _min_group_count(check, report)
    return _group_band(check, report)


def _result(check: Check, outcome: Outcome, message: str, **numbers: float | None) -> CheckResult:
    return CheckResult(check=check, outcome=outcome, message=message, **numbers)


def _grouping(report: Mapping[str, Any], attribute: str) -> Mapping[str, Any] | None:
    policy = next((e for e in report.get("evaluations", []) if e["exit"] == POLICY_EXIT), None)
    if policy is None:
        return None
    return next((g for g in policy["groupings"] if g["attribute"] == attribute), None)


def _overall_metrics(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The served policy's metrics over everyone: the ``overall`` grouping's one group, else (a multiclass
    report without that grouping) the summary's ``overall``."""
    grouping = _grouping(report, OVERALL)
    if grouping is not None:
        return dict(grouping["groups"][0]["metrics"])
    overall = report.get("summary", {}).get("overall") if report.get("task") == "multiclass" else None
    return None if overall is None else dict(overall)


def _missing(check: Check, attribute: str) -> CheckResult:
    return _result(check, "insufficient", f"the evaluation has no {attribute!r} grouping")


def _limit(check: LimitCheck, report: Mapping[str, Any]) -> CheckResult:
    if check.attribute == OVERALL:
        metrics = _overall_metrics(report)
        if metrics is None:
            return _missing(check, check.attribute)
        entry = metrics.get(check.metric)
        if entry is None:
            return _result(check, "insufficient", f"the evaluation has no overall {check.metric}")
    else:
        grouping = _grouping(report, check.attribute)
        entry = None if grouping is None else grouping.get("gaps", {}).get(check.metric)
        if entry is None:
            return _missing(check, check.attribute)
    numbers = {"value": entry["value"], "ci_low": entry["ci_low"], "ci_high": entry["ci_high"]}
    numbers["p_value"] = entry.get("p_value")
    judged = entry["value"] if check.on == "estimate" else entry[check.on]
    name = f"{check.metric} over {check.attribute}" if check.attribute != OVERALL else f"overall {check.metric}"
    if entry["status"] != "ok" or judged is None:
        return _result(check, "insufficient", f"{name} is {entry['status']}: no {check.on} to judge", **numbers)
    bounds = " and ".join(
        text
        for text in (
            f"≤ {check.max}" if check.max is not None else "",
            f"≥ {check.min}" if check.min is not None else "",
        )
        if text
    )
    ok = (check.max is None or judged <= check.max) and (check.min is None or judged >= check.min)
    where = "" if check.on == "estimate" else f" ({check.on})"
    verdict = "holds" if ok else "breaks"
    return _result(check, "pass" if ok else "fail", f"{name}{where} = {judged:.4g} {verdict} {bounds}", **numbers)


def _min_group_count(check: MinGroupCountCheck, report: Mapping[str, Any]) -> CheckResult:
    grouping = _grouping(report, check.attribute)
    if grouping is None:
        return _missing(check, check.attribute)
    counts = [(g["group"], label, pos, neg) for g in grouping["groups"] for label, pos, neg in _one_vs_rest(g, report)]
    short = [
        f"{group}{label} ({pos} positives, {neg} negatives)"
        for group, label, pos, neg in counts
        if pos < check.min_positives or neg < check.min_negatives
    ]
    smallest = min((min(pos, neg) for _, _, pos, neg in counts), default=None)
    wanted = f"{check.min_positives} positives and {check.min_negatives} negatives"
    if report.get("task") == "multiclass":
        wanted += " of every class"
    if short:
        return _result(check, "insufficient", f"{check.attribute}: below {wanted}: {', '.join(short)}", value=smallest)
    return _result(check, "pass", f"every {check.attribute} group has at least {wanted}", value=smallest)


def _one_vs_rest(group: Mapping[str, Any], report: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(label, positives, negatives) of a group: its own counts, or per class of a multiclass report (the
    class's samples against the group's others), labelled " class c"."""
    if report.get("task") != "multiclass":
        return [("", group["n_pos"], group["n_neg"])]
    return [
        (f" class {name}", count, group["n"] - count)
        for name, count in zip(report["classes"], group["class_counts"], strict=True)
    ]


def _group_band(check: GroupBandCheck, report: Mapping[str, Any]) -> CheckResult:
    grouping = _grouping(report, check.attribute)
    if grouping is None:
        return _missing(check, check.attribute)
    judged: dict[str, float] = {}
    left_out: list[str] = []
    for group in grouping["groups"]:
        entry = group["metrics"].get(check.metric)
        if entry is None:
            return _result(check, "insufficient", f"the {check.attribute} groups have no {check.metric}")
        if entry["status"] == "ok" and entry["value"] is not None and entry["n"] >= check.min_n:
            judged[group["group"]] = entry["value"]
        else:
            left_out.append(f"{group['group']} (n {entry['n']}, {entry['status']})")
    needed = 2 if check.max_spread is not None else 1
    aside = f"; left out: {', '.join(left_out)}" if left_out else ""
    if len(judged) < needed:
        return _result(check, "insufficient", f"{check.metric} of too few {check.attribute} groups to judge{aside}")
    lowest, highest = min(judged, key=judged.__getitem__), max(judged, key=judged.__getitem__)
    low, high = judged[lowest], judged[highest]
    spread = high - low
    problems = [
        f"{group} {check.metric} {value:.4g} outside [{check.low}, {check.high}]"
        for group, value in judged.items()
        if (check.low is not None and value < check.low) or (check.high is not None and value > check.high)
    ]
    if check.max_spread is not None and spread > check.max_spread:
        problems.append(f"spread {spread:.4g} > {check.max_spread} ({lowest} {low:.3g} to {highest} {high:.3g})")
    numbers: dict[str, float | None] = {"value": spread, "ci_low": low, "ci_high": high}
    if problems:
        return _result(check, "fail", f"{check.attribute} {check.metric}: {'; '.join(problems)}{aside}", **numbers)
    return _result(
        check, "pass", f"{check.attribute} {check.metric} of {len(judged)} groups within the band{aside}", **numbers
    )


def _difference(comparison: Mapping[str, Any], attribute: str, metric: str) -> Mapping[str, Any] | None:
    return next((d for d in comparison["differences"] if d["attribute"] == attribute and d["metric"] == metric), None)


def _no_worsening(check: NoWorseningCheck, comparison: Mapping[str, Any], prefixes: list[str]) -> CheckResult:
    rows = []
    for prefix in prefixes:
        for name in check.metrics:
            attribute = OVERALL if name in COMPARED_OVERALL else check.attribute
            rows.append((f"{prefix}{name}", attribute, _difference(comparison, attribute, f"{prefix}{name}")))
    undefined = [f"{m} ({a})" for m, a, d in rows if d is None or d["difference"] is None or d["p_value"] is None]
    if undefined:
        return _result(check, "insufficient", f"no paired difference for {', '.join(undefined)}")
    adjusted = holm(np.array([d["p_value"] for _, _, d in rows if d is not None], dtype=np.float64))
    worse = []
    for (metric, attribute, d), p in zip(rows, adjusted, strict=True):
        assert d is not None
        harm = -d["difference"] if metric.rsplit(":", 1)[-1] in HIGHER_IS_BETTER else d["difference"]
        if harm > 0 and p < check.alpha:
            worse.append((metric, attribute, d, float(p)))
    if not worse:
        return _result(
            check,
            "pass",
            f"no significant worsening of {', '.join(check.metrics)} (Holm, alpha {check.alpha})",
            p_value=float(np.min(adjusted)),
        )
    metric, attribute, d, p = min(worse, key=lambda w: w[3])
    listed = "; ".join(f"{m} ({a}) {x['difference']:+.4g}, p_holm {q:.2g}" for m, a, x, q in worse)
    return _result(
        check,
        "fail",
        f"significantly worse than the model behind the alias: {listed}",
        value=d["difference"],
        ci_low=d["ci_low"],
        ci_high=d["ci_high"],
        p_value=p,
    )


def _max_drop(check: MaxDropCheck, comparison: Mapping[str, Any], prefixes: list[str]) -> CheckResult:
    found = [(p, _difference(comparison, OVERALL, f"{p}{check.metric}")) for p in prefixes]
    missing = [f"{p}{check.metric}" for p, d in found if d is None or d["difference"] is None]
    if missing:
        return _result(check, "insufficient", f"no paired {', '.join(missing)} difference")
    prefix, d = max(found, key=lambda pair: -pair[1]["difference"] if pair[1] else 0.0)  # the largest drop
    assert d is not None
    drop = -d["difference"]
    numbers = {"value": drop, "ci_low": _neg(d["ci_high"]), "ci_high": _neg(d["ci_low"]), "p_value": d["p_value"]}
    judged = drop if check.on == "estimate" else numbers["ci_high"]
    if judged is None:
        return _result(check, "insufficient", f"no interval for the {check.metric} drop", **numbers)
    ok = judged <= check.max_drop
    verdict = "within" if ok else "over"
    where = "" if check.on == "estimate" else " (ci_high)"
    message = (
        f"{prefix}{check.metric} drop{where} {judged:.4g} against the model behind the alias is {verdict} "
        f"{check.max_drop}"
    )
    return _result(check, "pass" if ok else "fail", message, **numbers)


def _neg(x: float | None) -> float | None:
    return None if x is None else -x
