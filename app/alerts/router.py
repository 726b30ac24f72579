"""Alert rules, alerts and webhooks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app.alerts import service, webhooks
from app.alerts.repository import ALERTS, DELIVERIES, RULES, WEBHOOKS
from app.alerts.schemas import (
    AlertList,
    AlertOut,
    AlertRuleIn,
    AlertRuleList,
    AlertRuleOut,
    DeliveryList,
    DeliveryOut,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from app.auth.deps import KeyManager, Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import ReadSessionDep, SessionDep, mark_resource
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit
from app.db.base import utcnow

router = APIRouter(tags=["alerts"], route_class=AuthenticatedRoute)


@router.post(
    "/v1/alert-rules",
    response_model=AlertRuleOut,
    status_code=201,
    summary="Create an alert rule",
    responses=problem_responses(404, 409, notes={404: "model_ref names no model or alias"}),
)
def create_rule(body: AlertRuleIn, principal: Writer, session: SessionDep, request: Request) -> AlertRuleOut:
    """A check on a model's live monitoring window, judged as predictions and outcomes arrive; a breach
    raises one alert (and webhook deliveries) until the check holds again."""
    rule = service.create_rule(session, principal.organisation_id, body)
    mark_resource(request, rule.id)
    return AlertRuleOut.of(rule)


@router.get("/v1/alert-rules", response_model=AlertRuleList, summary="List alert rules")
def list_rules(
    principal: Reader, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> AlertRuleList:
    rows, next_cursor = RULES.page(session, principal.organisation_id, limit, cursor)
    return AlertRuleList(items=[AlertRuleOut.of(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/v1/alert-rules/{rule_id}",
    response_model=AlertRuleOut,
    summary="Get an alert rule",
    responses=problem_responses(404),
)
def get_rule(rule_id: str, principal: Reader, session: ReadSessionDep) -> AlertRuleOut:
    return AlertRuleOut.of(RULES.get_or_404(session, principal.organisation_id, rule_id))


@router.delete(
    "/v1/alert-rules/{rule_id}", status_code=204, summary="Delete an alert rule", responses=problem_responses(404)
)
def delete_rule(rule_id: str, principal: Writer, session: SessionDep, request: Request) -> Response:
    """Stop judging the rule; its alerts stay listed, a firing one is resolved."""
    mark_resource(request, rule_id)
    service.delete_rule(session, principal.organisation_id, rule_id)
    return Response(status_code=204)


@router.get("/v1/alerts", response_model=AlertList, summary="List alerts")
def list_alerts(
    principal: Reader,
    session: ReadSessionDep,
    status: Annotated[Literal["firing", "resolved"] | None, Query(description="firing or resolved")] = None,
    model_id: Annotated[str | None, Query(max_length=64, description="a model version id")] = None,
    rule_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> AlertList:
    """Newest first."""
    rows, next_cursor = ALERTS.page(
        session, principal.organisation_id, limit, cursor, status=status, model_version_id=model_id, rule_id=rule_id
    )
    return AlertList(items=[AlertOut.of(a) for a in rows], next_cursor=next_cursor)


@router.post(
    "/v1/webhooks",
    response_model=WebhookCreated,
    status_code=201,
    summary="Register a webhook",
    responses=problem_responses(409, notes={409: "the organisation has the most webhooks allowed"}),
)
def create_webhook(body: WebhookIn, principal: KeyManager, session: SessionDep, request: Request) -> WebhookCreated:
    """Alert events (``alert.firing``, ``alert.resolved``) are POSTed to the URL, signed with the
    secret returned here, once (docs/monitoring.md: verifying a delivery)."""
    webhook, secret = webhooks.create_webhook(session, principal.organisation_id, body.url)
    mark_resource(request, webhook.id)
    return WebhookCreated(**WebhookOut.of(webhook).model_dump(), secret=secret)


@router.get("/v1/webhooks", response_model=WebhookList, summary="List webhooks")
def list_webhooks(
    principal: KeyManager, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> WebhookList:
    rows, next_cursor = WEBHOOKS.page(session, principal.organisation_id, limit, cursor)
    return WebhookList(items=[WebhookOut.of(w) for w in rows], next_cursor=next_cursor)


@router.delete(
    "/v1/webhooks/{webhook_id}", status_code=204, summary="Delete a webhook", responses=problem_responses(404)
)
def delete_webhook(webhook_id: str, principal: KeyManager, session: SessionDep, request: Request) -> Response:
    """No further deliveries; its delivery log stays readable until the organisation is removed."""
    mark_resource(request, webhook_id)
    WEBHOOKS.get_or_404(session, principal.organisation_id, webhook_id).deleted_at = utcnow()
    return Response(status_code=204)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    summary="List a webhook's deliveries",
    responses=problem_responses(404),
)
def list_deliveries(
    webhook_id: str,
    principal: KeyManager,
    session: ReadSessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> DeliveryList:
    """Newest first: each event's status, attempts, next try and the receiver's last answer."""
    WEBHOOKS.get_or_404(session, principal.organisation_id, webhook_id)
    rows, next_cursor = DELIVERIES.page(session, principal.organisation_id, limit, cursor, webhook_id=webhook_id)
    return DeliveryList(items=[DeliveryOut.of(d) for d in rows], next_cursor=next_cursor)
