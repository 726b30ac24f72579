"""Alert rules and their evaluation: a rule is judged on its model's live window (from the
monitoring aggregates, so a judgement costs the same at a thousand or a million predictions), at most
once per ``min_interval_seconds``. A breach raises one alert, which stays ``firing`` while the rule
keeps breaching and is ``resolved`` by the first judgement that passes; each change queues one
webhook delivery per enabled webhook of the organisation, in the same transaction. Never commits,
except ``evaluate_due``, which runs outside requests and commits each rule on its own."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.alerts import rules
from app.alerts.models import FIRING, Alert, AlertRule, Webhook, WebhookDelivery
from app.alerts.repository import RULES
from app.alerts.rules import AlertCheck, DriftCheck
from app.alerts.schemas import AlertOut, AlertRuleIn
from app.core.errors import ConflictError, InputError, NotFoundError
from app.db.base import utcnow
from app.db.engine import transaction
from app.serving import registry
from app.serving.aggregates import EVERYONE, OVERALL
from app.serving.drift import audit_counts, drift
from app.serving.monitoring import Window, as_report, live_counts, live_groupings
from app.settings import Settings

log = logging.getLogger(__name__)
CHECKS: TypeAdapter[AlertCheck] = TypeAdapter(AlertCheck)
MAX_RULES = 500  # per organisation: each is judged in the background


def create_rule(session: Session, organisation_id: str, body: AlertRuleIn) -> AlertRule:
    problem = rules.live_problem(body.rule)
    if problem is not None:
        raise InputError("invalid alert rule", [problem])
    registry.resolve(session, organisation_id, body.model_ref)  # 404 for an unknown model or alias
    if len(session.scalars(RULES.query(organisation_id).limit(MAX_RULES)).all()) >= MAX_RULES:
        raise ConflictError(f"an organisation has at most {MAX_RULES} alert rules; delete one first")
    rule = AlertRule(
        organisation_id=organisation_id,
        rule=body.rule.model_dump(mode="json"),
        **body.model_dump(exclude={"rule"}),
    )
    session.add(rule)
    session.flush()
    return rule


def delete_rule(session: Session, organisation_id: str, rule_id: str) -> None:
    """Soft-delete the rule (its alerts keep naming it); a firing alert of it is resolved."""
    rule = RULES.get_or_404(session, organisation_id, rule_id)
    now = utcnow()
    rule.deleted_at = now
    for alert in session.scalars(select(Alert).where(Alert.rule_id == rule.id, Alert.status == FIRING)):
        alert.status, alert.resolved_at = "resolved", now
        alert.message += " (resolved: the rule was deleted)"


def evaluate_due(factory: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> int:
    """Judge every rule whose interval has passed, each in its own transaction; the number judged."""
    now = now or utcnow()
    with factory() as session:
        candidates = session.execute(
            select(AlertRule.id, AlertRule.last_evaluated_at, AlertRule.min_interval_seconds).where(
                AlertRule.deleted_at.is_(None)
            )
        ).all()
    due = [i for i, last, interval in candidates if last is None or last + timedelta(seconds=interval) <= now]
    judged = 0
    for rule_id in due:
        try:
            with transaction(factory) as session:
                judged += evaluate_rule(session, settings, rule_id, now)
        except Exception:  # one broken rule must not stop the others
            log.exception("alert rule %s could not be evaluated", rule_id)
    return judged


def evaluate_rule(session: Session, settings: Settings, rule_id: str, now: datetime) -> int:
    """Judge one rule if it is still due (it is locked first, so replicas judge it once); 1 if judged."""
    rule = session.get(AlertRule, rule_id, with_for_update=True)
    if rule is None or rule.deleted_at is not None:
        return 0
    if (
        rule.last_evaluated_at is not None
        and rule.last_evaluated_at + timedelta(seconds=rule.min_interval_seconds) > now
    ):
        return 0
    rule.last_evaluated_at = now
    try:
        model, _ = registry.resolve(session, rule.organisation_id, rule.model_ref)
    except (NotFoundError, ConflictError) as exc:
        rule.last_outcome = "insufficient"
        log.info("alert rule %s: %s", rule.id, exc)
        return 1
    _resolve_moved(session, rule, model.id, now)
    check = CHECKS.validate_python(rule.rule)
    counts = live_counts(session, model, Window(rule.window_days, rule.last_outcomes), now)
    if isinstance(check, DriftCheck):
        audit = audit_counts(session, settings, rule.organisation_id, model.id)
        shift = drift(counts.predictions, audit) if audit is not None else None
        result = rules.evaluate(check, {}, shift, rule.min_n)
    else:
        everyone = counts.outcomes.get((OVERALL, EVERYONE))
        if everyone is None or everyone.n_outcomes < rule.min_n:
            rule.last_outcome = "waiting"
            return 1
        report = as_report(live_groupings(counts.outcomes, settings.min_group_count))
        result = rules.evaluate(check, report, None, rule.min_n)
    rule.last_outcome = result.outcome
    firing = session.scalar(
        select(Alert).where(Alert.rule_id == rule.id, Alert.model_version_id == model.id, Alert.status == FIRING)
    )
    if rules.breaches(check, result) and firing is None:
        _fire(session, rule, model.id, result.value, result.message, now)
    elif result.outcome == "pass" and firing is not None:
        firing.status, firing.resolved_at = "resolved", now
        _notify(session, rule, firing, "alert.resolved", now)
    return 1


def _resolve_moved(session: Session, rule: AlertRule, model_id: str, now: datetime) -> None:
    """An alias the rule follows moved: the old model's firing alert is no longer watched, so it ends."""
    moved = select(Alert).where(Alert.rule_id == rule.id, Alert.model_version_id != model_id, Alert.status == FIRING)
    for alert in session.scalars(moved):
        alert.status, alert.resolved_at = "resolved", now
        alert.message += f" (resolved: {rule.model_ref} now names another model)"
        _notify(session, rule, alert, "alert.resolved", now)


def _fire(session: Session, rule: AlertRule, model_id: str, value: float | None, message: str, now: datetime) -> None:
    alert = Alert(
        organisation_id=rule.organisation_id,
        rule_id=rule.id,
        model_version_id=model_id,
        value=value,
        message=message,
        created_at=now,
    )
    try:
        with session.begin_nested():  # the partial unique index: another replica fired it first
            session.add(alert)
    except IntegrityError:
        return
    _notify(session, rule, alert, "alert.firing", now)


def _notify(session: Session, rule: AlertRule, alert: Alert, event: str, now: datetime) -> None:
    """Queue the event for every enabled webhook of the organisation (the outbox)."""
    session.flush()
    payload: dict[str, Any] = {
        "event": event,
        "alert": AlertOut.of(alert).model_dump(mode="json"),
        "rule": {"id": rule.id, "name": rule.name, "model_ref": rule.model_ref, "rule": rule.rule},
    }
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    hooks = session.scalars(
        select(Webhook.id).where(
            Webhook.organisation_id == rule.organisation_id, Webhook.enabled.is_(True), Webhook.deleted_at.is_(None)
        )
    )
    for webhook_id in hooks:
        session.add(
            WebhookDelivery(
                organisation_id=rule.organisation_id, webhook_id=webhook_id, event=event, body=body, next_attempt_at=now
            )
        )
