"""Alert rules: policy checks on the live window raise one alert per breach, resolved when the check
holds again; bad rules are refused with the field named; drift checks judge every group."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alert_helpers import BAND, post_batch
from monitoring_helpers import organisation_id, register_model

from app.alerts.rules import DriftCheck, evaluate
from app.alerts.service import evaluate_due
from app.db.base import utcnow
from app.serving.schemas import DriftGroup, DriftOut


def _rule(model_ref: str, **overrides) -> dict:
    return {
        "name": "FPR band across sex",
        "model_ref": model_ref,
        "rule": BAND,
        "last_outcomes": 80,
        "min_n": 40,
        "min_interval_seconds": 1,
        **overrides,
    }


def test_a_breach_fires_once_and_resolves_when_the_check_holds(client, keys, session_factory, settings):
    model_id = register_model(session_factory)
    org = organisation_id(session_factory)
    auditor, predictor = keys.headers(), keys.headers(role="predictor")
    created = client.post("/v1/alert-rules", headers=auditor, json=_rule(model_id))
    assert created.status_code == 201, created.text
    rule_id = created.json()["id"]
    clock = utcnow()

    def judge() -> None:
        nonlocal clock
        clock += timedelta(seconds=2)
        assert evaluate_due(session_factory, settings, clock) == 1

    judge()  # no outcomes yet: below min_n, nothing to judge
    assert client.get(f"/v1/alert-rules/{rule_id}", headers=auditor).json()["last_outcome"] == "waiting"
    post_batch(client, predictor, model_id, org, {"female": 0.8, "male": 0.1})
    for _ in range(3):  # the breach is seen three times, and fires once
        judge()
    firing = client.get("/v1/alerts", headers=auditor, params={"status": "firing"}).json()["items"]
    assert len(firing) == 1 and firing[0]["rule_id"] == rule_id and firing[0]["model_version_id"] == model_id
    assert firing[0]["value"] == pytest.approx(0.7) and "spread" in firing[0]["message"]
    assert evaluate_due(session_factory, settings, clock) == 0  # rate-limited: judged within its interval

    post_batch(client, predictor, model_id, org, {"female": 0.1, "male": 0.1})  # the window is now all good
    judge()
    alerts = client.get("/v1/alerts", headers=auditor).json()["items"]
    assert [(a["id"], a["status"]) for a in alerts] == [(firing[0]["id"], "resolved")]
    assert alerts[0]["resolved_at"] is not None

    post_batch(client, predictor, model_id, org, {"female": 0.1, "male": 0.9})  # a new breach: a new alert
    judge()
    judge()
    statuses = [a["status"] for a in client.get("/v1/alerts", headers=auditor).json()["items"]]
    assert statuses == ["firing", "resolved"]
    assert (
        len(client.get("/v1/alerts", headers=auditor, params={"model_id": model_id, "limit": 1}).json()["items"]) == 1
    )
    assert client.get("/v1/alerts", headers=auditor, params={"model_id": "mdl_other"}).json()["items"] == []

    assert client.delete(f"/v1/alert-rules/{rule_id}", headers=auditor).status_code == 204
    assert client.get("/v1/alerts", headers=auditor, params={"status": "firing"}).json()["items"] == []
    assert client.get(f"/v1/alert-rules/{rule_id}", headers=auditor).status_code == 404
    judge_none = evaluate_due(session_factory, settings, clock + timedelta(seconds=10))
    assert judge_none == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"rule": {**BAND, "metric": "sharpness"}}, "rule"),
        ({"rule": {"check": "limit", "metric": "ece", "max": 0.1}}, "rule.metric"),
        ({"rule": {"check": "limit", "metric": "pfd", "attribute": "sex", "max": 0.1, "on": "ci_high"}}, "rule.on"),
        ({"rule": {"check": "no_worsening", "metrics": ["auc"]}}, "rule"),
        ({"rule": {"check": "drift", "signal": "psi", "max": -1}}, "rule"),
        ({"rule": {**BAND, "max_spread": None}}, "rule"),
        ({"min_n": 0}, "min_n"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(client, keys, session_factory, change, field):
    model_id = register_model(session_factory)
    response = client.post("/v1/alert-rules", headers=keys.headers(), json=_rule(model_id, **change))
    assert response.status_code == 422, response.text
    assert any(e["field"].removeprefix("body.").startswith(field) for e in response.json()["errors"]), response.json()


def test_rules_name_models_of_the_callers_organisation(client, keys, session_factory):
    model_id = register_model(session_factory, org="Elsewhere General")
    response = client.post("/v1/alert-rules", headers=keys.headers(), json=_rule(model_id))
    assert response.status_code == 404
    assert (
        client.post("/v1/alert-rules", headers=keys.headers(role="predictor"), json=_rule(model_id)).status_code == 403
    )


def test_drift_checks_judge_every_large_enough_group():
    check = DriftCheck(check="drift", signal="psi", attribute="sex", max=0.25)

    def group(name: str, n: int, psi: float) -> DriftGroup:
        return DriftGroup(attribute="sex", group=name, n=n, audit_n=500, psi=psi, ks=0.0, exit_rate_shift=None)

    shifted = DriftOut(evaluation_id="evl_x", groups=[group("female", 200, 0.6), group("male", 200, 0.01)])
    assert evaluate(check, {}, shifted, min_n=100).outcome == "fail"
    assert evaluate(check, {}, shifted, min_n=100).value == pytest.approx(0.6)
    small = DriftOut(evaluation_id="evl_x", groups=[group("female", 20, 0.6), group("male", 200, 0.01)])
    assert evaluate(check, {}, small, min_n=100).outcome == "pass"  # the shifted group is too small to judge
    assert evaluate(check, {}, small, min_n=1000).outcome == "insufficient"
    assert evaluate(check, {}, None, min_n=1).outcome == "insufficient"  # no audit to compare with
    exits = DriftCheck(check="drift", signal="exit_rate_shift", attribute="sex", max=0.1)
    assert evaluate(exits, {}, shifted, min_n=1).outcome == "insufficient"  # single-exit: no exit rates


def test_a_rule_on_an_alias_follows_it_and_ends_the_old_models_alert(client, keys, session_factory, settings):
    first, second = register_model(session_factory), register_model(session_factory)
    org = organisation_id(session_factory)
    auditor, predictor = keys.headers(), keys.headers(role="predictor")
    assert client.put("/v1/models/aliases/production", headers=auditor, json={"model_version_id": first}).is_success
    assert client.post("/v1/alert-rules", headers=auditor, json=_rule("production")).status_code == 201
    post_batch(client, predictor, first, org, {"female": 0.8, "male": 0.1})
    clock = utcnow()
    assert evaluate_due(session_factory, settings, clock) == 1
    (alert,) = client.get("/v1/alerts", headers=auditor, params={"status": "firing"}).json()["items"]
    assert alert["model_version_id"] == first

    assert client.put("/v1/models/aliases/production", headers=auditor, json={"model_version_id": second}).is_success
    assert evaluate_due(session_factory, settings, clock + timedelta(seconds=2)) == 1
    (ended,) = client.get("/v1/alerts", headers=auditor).json()["items"]
    assert ended["status"] == "resolved" and "production now names another model" in ended["message"]
