"""Fairness policies, the deployment gate, and promotion through it.

Policies are written by admins (``KeyManager``: who may change what "fair enough to deploy" means is
the same trust as who may issue keys) and read by any reader. Promotion needs ``write`` and passes
only through the gate; past a failed gate only with an admin key and a written reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.auth.deps import KeyManager, Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit
from app.gates import service
from app.gates.schemas import AliasChangeOut, AliasHistory, AliasOut, GateOut, PolicyIn, PolicyOut, PromotionIn
from app.serving import registry

router = APIRouter(tags=["gates"], route_class=AuthenticatedRoute)
Version = Annotated[int | None, Query(ge=1, le=1_000_000, description="a past version; the latest if left out")]
GATE_REFUSED = {
    409: "the deployment gate refuses the model: 'errors' lists every check that did not pass, with "
    "its value, interval and p-value; or the model's training job is still running"
}


def _put_policy(
    alias: str | None, body: PolicyIn, principal: KeyManager, session: SessionDep, request: Request
) -> PolicyOut:
    row = service.put_policy(session, principal, alias, body)
    mark_resource(request, row.id, {"policy_scope": alias or "organisation", "version": row.version})
    return PolicyOut.of(row)


@router.put(
    "/v1/policies",
    response_model=PolicyOut,
    summary="Set the organisation's fairness policy",
    responses=problem_responses(404, 409, notes={404: "no such cohort", 409: "a concurrent change; retry"}),
)
def put_organisation_policy(body: PolicyIn, principal: KeyManager, session: SessionDep, request: Request) -> PolicyOut:
    """Store a new version of the policy every alias without its own policy is gated by (the old
    versions are kept). Admins only."""
    return _put_policy(None, body, principal, session, request)


@router.get(
    "/v1/policies",
    response_model=PolicyOut,
    summary="Get the organisation's fairness policy",
    responses=problem_responses(404),
)
def get_organisation_policy(principal: Reader, session: ReadSessionDep, version: Version = None) -> PolicyOut:
    return PolicyOut.of(service.get_policy(session, principal.organisation_id, None, version))


@router.put(
    "/v1/policies/{alias}",
    response_model=PolicyOut,
    summary="Set an alias's fairness policy",
    responses=problem_responses(404, 409, notes={404: "no such cohort", 409: "a concurrent change; retry"}),
)
def put_alias_policy(
    alias: str, body: PolicyIn, principal: KeyManager, session: SessionDep, request: Request
) -> PolicyOut:
    """Store a new version of the policy that gates this alias (instead of the organisation's). Admins only."""
    return _put_policy(alias, body, principal, session, request)


@router.get(
    "/v1/policies/{alias}",
    response_model=PolicyOut,
    summary="Get an alias's fairness policy",
    responses=problem_responses(404),
)
def get_alias_policy(alias: str, principal: Reader, session: ReadSessionDep, version: Version = None) -> PolicyOut:
    return PolicyOut.of(service.get_policy(session, principal.organisation_id, alias, version))


@router.put(
    "/v1/models/aliases/{name}",
    response_model=AliasOut,
    summary="Point an alias at a model version, through the deployment gate",
    responses=problem_responses(404, 409, notes=GATE_REFUSED),
)
def put_alias(
    name: str, body: PromotionIn, principal: Writer, session: SessionDep, settings: SettingsDep, request: Request
) -> AliasOut:
    """Point an alias (e.g. ``production``) at a model version once the applicable fairness policy
    holds on its evaluation; prediction can then name the alias. An admin may override a failed
    gate with ``override_reason``."""
    mark_resource(request, body.model_version_id)
    registry.check_alias_name(name)
    model, _ = registry.resolve(session, principal.organisation_id, body.model_version_id)
    gate = service.run_gate(session, settings, principal.organisation_id, model, name)
    detail = {"alias": name, "gate": gate.outcome, "override_reason": body.override_reason}
    mark_resource(request, model.id, detail)
    return service.promote(session, principal, name, model, gate, body.override_reason)


@router.get(
    "/v1/models/{model_ref}/gate",
    response_model=GateOut,
    summary="Dry-run the deployment gate",
    description=registry.MODEL_REF,
    responses=problem_responses(404, 409, notes={409: "the version's training job is still queued or running"}),
)
def dry_run_gate(
    model_ref: str,
    alias: Annotated[str, Query(description="the alias the model would take, e.g. production")],
    principal: Reader,
    session: ReadSessionDep,
    settings: SettingsDep,
) -> GateOut:
    """What promoting the model to ``alias`` would meet: every check with its value, interval and
    p-value. Changes nothing."""
    model, _ = registry.resolve(session, principal.organisation_id, model_ref)
    return service.run_gate(session, settings, principal.organisation_id, model, alias)


@router.get(
    "/v1/models/aliases/{name}/history",
    response_model=AliasHistory,
    summary="An alias's moves",
)
def alias_history(
    name: str, principal: Reader, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> AliasHistory:
    """Every move of the alias, newest first: who, when, from which model to which, the gate's result
    and an override's reason."""
    registry.check_alias_name(name)
    rows, next_cursor = registry.ALIAS_HISTORY.page(session, principal.organisation_id, limit, cursor, alias=name)
    return AliasHistory(items=[AliasChangeOut.of(r) for r in rows], next_cursor=next_cursor)
