"""What an alert rule checks: the policy language's checks (``app.fairness.policy``: ``limit``,
``group_band``, ``min_group_count``) on the live monitoring window, and drift checks on the
window's served scores and exit rates against the audit. Pure: a check and the window in, a
``CheckResult`` out.

A rule breaches when its check fails, or, for ``min_group_count``, when the evidence is
insufficient (that check's alarm: a group has too few outcomes to be judged). A check of a policy
metric the live aggregates cannot give (``ece``, ``brier``), or a gap's interval, is refused when the
rule is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.fairness.policy import (
    OVERALL,
    Attribute,
    CheckResult,
    GroupBandCheck,
    LimitCheck,
    MinGroupCountCheck,
    evaluate_check,
)
from app.serving.schemas import DriftOut

NOT_LIVE = frozenset({"ece", "brier"})  # calibration needs per-sample scores; the aggregates keep counts


class DriftCheck(BaseModel):
    """Every group of ``attribute`` (with at least the rule's ``min_n`` predictions in the window)
    keeps ``signal`` (psi, ks or exit_rate_shift, against the audit) at or below ``max``."""

    model_config = ConfigDict(extra="forbid")

    check: Literal["drift"]
    signal: Literal["psi", "ks", "exit_rate_shift"]
    attribute: Attribute = OVERALL
    max: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


AlertCheck = Annotated[LimitCheck | GroupBandCheck | MinGroupCountCheck | DriftCheck, Field(discriminator="check")]


def live_problem(check: AlertCheck) -> dict[str, str] | None:
    """The field error of a check live monitoring cannot judge, if any."""
    metric = getattr(check, "metric", None)
    if metric in NOT_LIVE:
        message = f"{metric} is not kept by live monitoring (it needs per-sample scores); use it in a policy instead"
        return {"field": "rule.metric", "message": message}
    if isinstance(check, LimitCheck) and check.attribute != OVERALL and check.on != "estimate":
        message = "live gaps have no interval (it would need a bootstrap over samples): judge the estimate"
        return {"field": "rule.on", "message": message}
    return None


def breaches(check: AlertCheck, result: CheckResult) -> bool:
    if isinstance(check, MinGroupCountCheck):
        return result.outcome == "insufficient"
    return result.outcome == "fail"


def evaluate(check: AlertCheck, report: Mapping[str, Any], drift: DriftOut | None, min_n: int) -> CheckResult:
    """``report``: the window's live groupings in report form (``app.serving.monitoring.as_report``)."""
    if isinstance(check, DriftCheck):
        return _drift(check, drift, min_n)
    return evaluate_check(check, report)


def _drift(check: DriftCheck, drift: DriftOut | None, min_n: int) -> CheckResult:
    def result(
        outcome: Literal["pass", "fail", "insufficient"], message: str, value: float | None = None
    ) -> CheckResult:
        return CheckResult.model_construct(check=check, outcome=outcome, message=message, value=value)

    if drift is None:
        return result("insufficient", "the model has no audit (training evaluation) to compare with")
    judged = {
        g.group: getattr(g, check.signal)
        for g in drift.groups
        if g.attribute == check.attribute and g.n >= min_n and getattr(g, check.signal) is not None
    }
    if not judged:
        return result("insufficient", f"no {check.attribute} group has {min_n} predictions with a {check.signal}")
    worst = max(judged, key=lambda g: judged[g])
    over = sorted(g for g, v in judged.items() if v > check.max)
    value = float(judged[worst])
    if over:
        return result("fail", f"{check.signal} above {check.max} for {check.attribute}: {', '.join(over)}", value)
    return result("pass", f"{check.signal} of every {check.attribute} group at most {check.max}", value)
