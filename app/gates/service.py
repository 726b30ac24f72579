"""Policies and the deployment gate. Never commits.

A model takes an alias only if the applicable policy (the alias's, else the organisation's) holds on
the model's evaluation: its study evaluation when it came from a study, else its training
evaluation. Checks that compare with the model behind the alias (``no_worsening``, ``max_drop``)
pair the two models' stored predictions on the samples they share; where they share none the check
is ``insufficient``, never ``pass``. An admin may promote past a failed gate with a written reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.roles import Role
from app.auth.service import Principal
from app.cohorts.repository import COHORTS
from app.core.errors import ConflictError, InputError, NotFoundError
from app.fairness import service as fairness
from app.fairness.models import Evaluation
from app.fairness.policy import (
    COMPARING_CHECKS,
    Check,
    CheckResult,
    Policy,
    evaluate_check,
    missing_attributes,
    report_attributes,
)
from app.gates.models import ORGANISATION_SCOPE, FairnessPolicy
from app.gates.repository import find_policy, next_version
from app.gates.schemas import AliasOut, GateOut, GateOutcome, PolicyIn
from app.serving import registry
from app.serving.models import ModelAlias, ModelVersion
from app.settings import Settings

GATE_EVALUATION_KINDS = ("study", "training")  # in order of preference
MAX_PAIRING_TRIES = 5  # incumbent evaluations tried for shared samples, same cohort and split first


def scope_of(alias: str | None) -> str:
    if alias is None:
        return ORGANISATION_SCOPE
    registry.check_alias_name(alias)
    return alias


def put_policy(session: Session, principal: Principal, alias: str | None, body: PolicyIn) -> FairnessPolicy:
    """Store the policy as the scope's next version (the old ones stay)."""
    scope = scope_of(alias)
    policy = body.policy()
    if body.cohort_id is not None:
        cohort = COHORTS.get_or_404(session, principal.organisation_id, body.cohort_id)
        missing = missing_attributes(policy, [str(a) for a in cohort.attributes])
        if missing:
            raise InputError(
                f"the policy names attributes cohort {cohort.id} does not have",
                [{**e, "field": f"body.{e['field']}"} for e in missing],
            )
    row = FairnessPolicy(
        organisation_id=principal.organisation_id,
        alias=scope,
        version=next_version(session, principal.organisation_id, scope),
        policy=policy.model_dump(mode="json"),
        cohort_id=body.cohort_id,
        api_key_id=principal.key_id,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise ConflictError("the policy was changed by a concurrent request; retry") from None
    return row


def get_policy(session: Session, organisation_id: str, alias: str | None, version: int | None) -> FairnessPolicy:
    row = find_policy(session, organisation_id, scope_of(alias), version)
    if row is None:
        what = f"of alias {alias!r}" if alias else "of the organisation"
        raise NotFoundError("fairness policy", f"{what}" + (f", version {version}" if version else ""))
    return row


def applicable_policy(session: Session, organisation_id: str, alias: str) -> FairnessPolicy | None:
    return find_policy(session, organisation_id, alias) or find_policy(session, organisation_id, ORGANISATION_SCOPE)


def gate_evaluation(session: Session, organisation_id: str, model_id: str) -> Evaluation | None:
    """The evaluation a gate judges: the model's latest ready study evaluation, else its training one."""
    preference = case({kind: k for k, kind in enumerate(GATE_EVALUATION_KINDS)}, value=Evaluation.kind)
    return session.scalar(
        select(Evaluation)
        .where(
            Evaluation.organisation_id == organisation_id,
            Evaluation.model_version_id == model_id,
            Evaluation.kind.in_(GATE_EVALUATION_KINDS),
            Evaluation.status == "ready",
        )
        .order_by(preference, Evaluation.created_at.desc())
        .limit(1)
    )


@dataclass(frozen=True)
class Pairing:
    """What the comparing checks (``no_worsening``, ``max_drop``) are judged on: the candidate's paired
    comparison with the incumbent, or why there is none and whether that lets them pass."""

    comparison: dict[str, Any] | None
    note: str
    passes_without: bool = False
    incumbent_evaluation_id: str | None = None
    n_matched: int | None = None


def run_gate(session: Session, settings: Settings, organisation_id: str, model: ModelVersion, alias: str) -> GateOut:
    """The gate's verdict on pointing ``alias`` at ``model``; changes nothing."""
    registry.check_alias_name(alias)
    incumbent = registry.current_target(session, organisation_id, alias)
    row = applicable_policy(session, organisation_id, alias)
    base: dict[str, Any] = {
        "model_version_id": model.id,
        "alias": alias,
        "incumbent_model_id": incumbent,
        "policy_id": row.id if row else None,
        "policy_version": row.version if row else None,
    }
    if row is None:
        return _gate(base, "no policy", "no fairness policy applies")
    policy = Policy.model_validate(row.policy)
    evaluation = gate_evaluation(session, organisation_id, model.id)
    if evaluation is None or evaluation.report is None:
        return _gate(base, "insufficient", f"model {model.id} has no ready study or training evaluation to check")
    pairing = _pairing(session, settings, organisation_id, evaluation, incumbent, model.id, policy)
    results = [_judge(check, evaluation.report, pairing) for check in policy.all_checks()]
    available = report_attributes(evaluation.report)
    missing = [a for a in policy.attributes if a not in available]
    outcome = _overall(results, missing)
    return _gate(
        base,
        outcome,
        _describe(outcome, results, missing, evaluation),
        evaluation_id=evaluation.id,
        checks=results,
        missing_attributes=missing,
        incumbent_evaluation_id=pairing.incumbent_evaluation_id,
        n_matched=pairing.n_matched,
    )


def _gate(base: dict[str, Any], outcome: GateOutcome, detail: str, **found: Any) -> GateOut:
    empty: dict[str, Any] = {
        "evaluation_id": None,
        "checks": [],
        "missing_attributes": [],
        "incumbent_evaluation_id": None,
        "n_matched": None,
    }
    return GateOut(**base, outcome=outcome, detail=detail, **(empty | found))


def _judge(check: Check, report: dict[str, Any], pairing: Pairing) -> CheckResult:
    if isinstance(check, COMPARING_CHECKS) and pairing.comparison is None:
        return CheckResult(
            check=check, outcome="pass" if pairing.passes_without else "insufficient", message=pairing.note
        )
    return evaluate_check(check, report, pairing.comparison)


def _pairing(
    session: Session,
    settings: Settings,
    organisation_id: str,
    evaluation: Evaluation,
    incumbent_id: str | None,
    model_id: str,
    policy: Policy,
) -> Pairing:
    """The paired comparison (candidate against incumbent) on the samples both models were evaluated
    on, from the incumbent's evaluation on the same cohort and split if it has one."""
    if incumbent_id is None:
        return Pairing(None, "no model behind the alias yet: nothing to compare with", passes_without=True)
    if incumbent_id == model_id:
        return Pairing(None, "the model is already behind the alias", passes_without=True)
    if not policy.needs_comparison():
        return Pairing(None, "the policy compares nothing with the model behind the alias")
    same_place = case(
        ((Evaluation.cohort_id == evaluation.cohort_id) & (Evaluation.split == evaluation.split), 0),
        (Evaluation.cohort_id == evaluation.cohort_id, 1),
        else_=2,
    )
    references: Sequence[Evaluation] = session.scalars(
        select(Evaluation)
        .where(
            Evaluation.organisation_id == organisation_id,
            Evaluation.model_version_id == incumbent_id,
            Evaluation.status == "ready",
        )
        .order_by(same_place, Evaluation.created_at.desc())
        .limit(MAX_PAIRING_TRIES)
    ).all()
    for reference in references:
        try:
            result = fairness.pair_evaluations(
                settings,
                [reference, evaluation],
                n_boot=settings.bootstrap_resamples,
                seed=0,
                attributes=policy.attributes,
            )
        except (ValueError, OSError):  # no shared samples or attributes, different labels, no stored predictions
            continue
        n = result["n_matched"]
        note = f"paired with {incumbent_id}'s evaluation {reference.id} on {n} shared samples"
        comparison = {**result["comparisons"][0], "n_matched": n}
        return Pairing(comparison, note, incumbent_evaluation_id=reference.id, n_matched=n)
    where = f"cohort {evaluation.cohort_id}" if evaluation.cohort_id else f"the samples of evaluation {evaluation.id}"
    note = (
        f"no stored predictions of {incumbent_id} (the model behind the alias) share samples with evaluation "
        f"{evaluation.id}: evaluate it on {where} first (POST /v1/models/{incumbent_id}/evaluate)"
    )
    return Pairing(None, note)


def _overall(results: list[CheckResult], missing: list[str]) -> GateOutcome:
    outcomes = {r.outcome for r in results}
    if "fail" in outcomes:
        return "fail"
    if "insufficient" in outcomes or missing:
        return "insufficient"
    return "pass"


def _describe(outcome: str, results: list[CheckResult], missing: list[str], evaluation: Evaluation) -> str:
    if outcome == "pass":
        return f"all {len(results)} checks pass on evaluation {evaluation.id}"
    parts = [f"{r.check.check}: {r.message}" for r in results if r.outcome != "pass"]
    if missing:
        parts.append(f"evaluation {evaluation.id} has no {', '.join(missing)} (attributes the policy lists)")
    return "; ".join(parts)


def promote(
    session: Session, principal: Principal, name: str, model: ModelVersion, gate: GateOut, override_reason: str | None
) -> AliasOut:
    """Point the alias at the model if its gate passed (or no policy applies); past a failed gate only
    for an admin who gave a reason. A refusal is a 409 listing every check that did not pass."""
    passed = gate.outcome in ("pass", "no policy")
    if passed and override_reason is not None:
        raise InputError(
            "the gate passes: there is nothing to override",
            [{"field": "body.override_reason", "message": "leave it out when the gate passes"}],
        )
    if not passed and override_reason is None:
        raise InputError(
            f"the deployment gate refuses {model.id} for alias {name!r} ({gate.outcome}): {gate.detail}",
            [_refusal(r) for r in gate.checks if r.outcome != "pass"]
            + ([] if gate.checks else [{"message": gate.detail}])
            + [
                {"message": f"the evaluation has no {a!r}, an attribute the policy lists"}
                for a in gate.missing_attributes
            ],
            status=409,
        )
    if not passed and principal.role != Role.admin:
        raise InputError(
            "only an admin key may promote past a failed gate",
            [{"field": "body.override_reason", "message": f"role {principal.role.value!r} may not override"}],
            status=403,
        )
    alias, _ = registry.set_alias(
        session,
        principal.organisation_id,
        name,
        model,
        api_key_id=principal.key_id,
        gate=gate.outcome,
        gate_result=gate.model_dump(mode="json"),
        override_reason=override_reason,
    )
    return _alias_out(alias, gate)


def _alias_out(alias: ModelAlias, gate: GateOut) -> AliasOut:
    return AliasOut(
        name=alias.name,
        model_version_id=alias.model_version_id,
        created_at=alias.created_at,
        override_reason=alias.override_reason,
        gate=gate,
    )


def _refusal(result: CheckResult) -> dict[str, Any]:
    """A failed check as a problem's error entry: which check, its numbers and why."""
    return {
        "message": result.message,
        "check": result.check.model_dump(mode="json"),
        "outcome": result.outcome,
        "value": result.value,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
    }
