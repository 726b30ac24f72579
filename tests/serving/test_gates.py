"""Deployment gates through the API, on SQLite and PostgreSQL: policies are versioned, audited and
checked; promotion runs the gate and is refused naming every failed check; an admin's override is
recorded and shown on the model card and in prediction provenance; ``no_worsening`` pairs the
candidate with the production model's predictions on the same samples."""

from __future__ import annotations

import dataclasses

import numpy as np
from archives import make_zip, upload
from serving_helpers import ORG, multipart, noise_images
from sqlalchemy import select

from app.audit.models import AuditLogEntry
from app.auth.service import ensure_organisation
from app.db.engine import transaction
from app.fairness.engine.inputs import PredictionSet
from app.fairness.evaluation import evaluate_predictions
from app.fairness.storage import store_evaluation
from app.serving.models import ModelVersion


def simulate(n: int, seed: int, *, shift: float = 1.5, group_shift: float = 0.0) -> PredictionSet:
    """Scored samples with skin type and sex; type VI gets ``group_shift`` less separation."""
    rng = np.random.default_rng(seed)
    skin = rng.choice(["I", "II", "III", "IV", "V", "VI"], n).astype(object)
    sex = rng.choice(["F", "M"], n).astype(object)
    y = (rng.random(n) < 0.3).astype(np.int64)
    logit = rng.normal(0.0, 1.0, n) + (shift - group_shift * (skin == "VI")) * y - 1
    scores = (1.0 / (1.0 + np.exp(-logit)))[:, None]
    groups = {"skin_type": skin, "sex": sex}
    return PredictionSet(y_true=y, exit_scores=scores, groups=groups, threshold=0.5, sample_ids=np.arange(n))


PFD_POLICY = {
    "attributes": ["skin_type"],
    "checks": [
        {"check": "limit", "metric": "pfd", "attribute": "skin_type", "max": 0.001},
        {"check": "group_band", "attribute": "skin_type", "metric": "fpr", "max_spread": 0.0001, "min_n": 10},
        {"check": "min_group_count", "attribute": "skin_type", "min_positives": 5000},
        {"check": "limit", "metric": "auc", "min": 0.5},
    ],
}


def register(
    session_factory, settings, model_id: str, predictions: PredictionSet | None = None, **evaluation
) -> str | None:
    """A model version row (no files: the gate reads only rows and stored predictions) and, given
    predictions, its evaluation (``kind`` training unless said otherwise); the evaluation's id."""
    with transaction(session_factory) as session:
        organisation_id = ensure_organisation(session, ORG).id
        session.add(
            ModelVersion(
                id=model_id,
                organisation_id=organisation_id,
                method="erm",
                backbone="small",
                path=model_id,
                sha256="0" * 64,
                files={},
                thresholds={"operating": 0.5, "exits": [None]},
                config={},
            )
        )
        session.flush()
        if predictions is None:
            return None
        outcome = evaluate_predictions(predictions, attributes=["skin_type", "sex"], settings=settings)
        stored = store_evaluation(
            session,
            settings,
            organisation_id=organisation_id,
            kind=evaluation.get("kind", "training"),
            name=model_id,
            predictions=predictions,
            report=outcome.report,
            rows=outcome.rows,
            metric_definition_version=outcome.version,
            config=outcome.config,
            model_version_id=model_id,
        )
        return stored.id


def put_policy(client, headers, policy, alias: str | None = None):
    return client.put(f"/v1/policies{'/' + alias if alias else ''}", headers=headers, json=policy)


def promote(client, headers, model_id: str, alias: str = "production", **extra):
    return client.put(f"/v1/models/aliases/{alias}", headers=headers, json={"model_version_id": model_id, **extra})


def test_promotion_is_refused_naming_every_failed_check(client, keys, settings, session_factory):
    auditor, admin = keys.headers(), keys.headers(role="admin")
    evaluation_id = register(session_factory, settings, "mdl_unfair", simulate(1500, 3, group_shift=1.5))
    assert promote(client, auditor, "mdl_unfair", alias="staging").status_code == 200  # no policy: passes
    assert put_policy(client, admin, PFD_POLICY).status_code == 200

    refused = promote(client, auditor, "mdl_unfair")
    assert refused.status_code == 409 and refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert "deployment gate refuses mdl_unfair" in problem["detail"]
    failed = {e["check"]["check"]: e for e in problem["errors"]}
    assert set(failed) == {"limit", "group_band", "min_group_count"}  # the auc limit passed
    pfd = failed["limit"]
    assert (
        pfd["outcome"] == "fail" and pfd["value"] > 0.001 and pfd["ci_low"] is not None and pfd["p_value"] is not None
    )
    assert "pfd over skin_type" in pfd["message"]
    assert failed["min_group_count"]["outcome"] == "insufficient"
    assert client.get("/v1/models/production", headers=auditor).status_code == 404  # nothing moved

    dry = client.get("/v1/models/mdl_unfair/gate?alias=production", headers=auditor).json()
    assert dry["outcome"] == "fail" and dry["evaluation_id"] == evaluation_id and dry["policy_version"] == 1
    assert [c["outcome"] for c in dry["checks"]] == ["fail", "fail", "insufficient", "pass"]

    # an alias's own policy replaces the organisation's
    lenient = {"attributes": ["skin_type"], "checks": [{"check": "limit", "metric": "auc", "min": 0.5}]}
    assert put_policy(client, admin, lenient, alias="research").status_code == 200
    moved = promote(client, auditor, "mdl_unfair", alias="research")
    assert moved.status_code == 200 and moved.json()["gate"]["outcome"] == "pass"


def test_a_study_evaluation_is_what_the_gate_judges(client, keys, settings, session_factory):
    admin = keys.headers(role="admin")
    register(session_factory, settings, "mdl_studied", simulate(1500, 3, group_shift=1.5))
    with transaction(session_factory) as session:  # the study's pooled evaluation of the same model: fair
        organisation_id = ensure_organisation(session, ORG).id
        fair = simulate(1500, 4)
        outcome = evaluate_predictions(fair, attributes=["skin_type"], settings=settings)
        study = store_evaluation(
            session,
            settings,
            organisation_id=organisation_id,
            kind="study",
            name="cv",
            predictions=fair,
            report=outcome.report,
            rows=outcome.rows,
            metric_definition_version=outcome.version,
            config=outcome.config,
            model_version_id="mdl_studied",
        )
    policy = {"attributes": ["skin_type"], "checks": [{"check": "limit", "metric": "auc", "min": 0.5}]}
    assert put_policy(client, admin, policy).status_code == 200
    gate = client.get("/v1/models/mdl_studied/gate?alias=production", headers=admin).json()
    assert gate["evaluation_id"] == study.id and gate["outcome"] == "pass"


def test_no_worsening_pairs_with_the_production_models_predictions_on_the_same_samples(
    client, keys, settings, session_factory
):
    auditor, admin = keys.headers(), keys.headers(role="admin")
    good = simulate(1500, 5, shift=2.5)
    rng = np.random.default_rng(0)
    worse = dataclasses.replace(
        good, exit_scores=np.clip(good.exit_scores + rng.normal(0, 0.35, good.exit_scores.shape), 0, 1)
    )
    elsewhere = dataclasses.replace(worse, sample_ids=np.arange(10_000, 11_500))
    production_evaluation = register(session_factory, settings, "mdl_good", good)
    register(session_factory, settings, "mdl_worse", worse)
    register(session_factory, settings, "mdl_elsewhere", elsewhere)
    register(session_factory, settings, "mdl_same", dataclasses.replace(good))
    assert promote(client, auditor, "mdl_good").status_code == 200
    policy = {
        "attributes": ["skin_type"],
        "checks": [
            {"check": "no_worsening", "metrics": ["auc", "pfd"], "attribute": "skin_type", "alpha": 0.05},
            {"check": "max_drop", "metric": "auc", "max_drop": 0.02},
        ],
    }
    assert put_policy(client, admin, policy, alias="production").status_code == 200

    gate = client.get("/v1/models/mdl_worse/gate?alias=production", headers=auditor).json()
    assert gate["incumbent_model_id"] == "mdl_good" and gate["incumbent_evaluation_id"] == production_evaluation
    assert gate["n_matched"] == 1500 and gate["outcome"] == "fail"
    no_worsening, max_drop = gate["checks"]
    assert no_worsening["outcome"] == "fail" and "auc (overall)" in no_worsening["message"]
    assert no_worsening["value"] < 0 and no_worsening["ci_high"] < 0 and no_worsening["p_value"] < 0.05
    assert max_drop["outcome"] == "fail" and max_drop["value"] > 0.02
    assert promote(client, auditor, "mdl_worse").status_code == 409

    apart = client.get("/v1/models/mdl_elsewhere/gate?alias=production", headers=auditor).json()
    assert apart["outcome"] == "insufficient" and apart["n_matched"] is None
    assert all("share samples" in c["message"] for c in apart["checks"])

    same = client.get("/v1/models/mdl_same/gate?alias=production", headers=auditor).json()
    assert same["outcome"] == "pass" and same["n_matched"] == 1500


def test_override_needs_an_admin_and_a_reason_and_is_shown_everywhere(client, keys, served, settings, session_factory):
    auditor, admin, predictor = keys.headers(), keys.headers(role="admin"), keys.headers(role="predictor")
    impossible = {"attributes": ["sex"], "checks": [{"check": "limit", "metric": "auc", "min": 0.9999}]}
    assert put_policy(client, admin, impossible).status_code == 200
    assert promote(client, auditor, served.id).status_code == 409
    reason = "Interim model approved by the clinical board pending retraining"
    forbidden = promote(client, auditor, served.id, override_reason=reason)
    assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["field"] == "body.override_reason"
    assert promote(client, admin, served.id).status_code == 409  # an admin too needs the reason
    moved = promote(client, admin, served.id, override_reason=reason)
    assert moved.status_code == 200, moved.json()
    assert moved.json()["override_reason"] == reason and moved.json()["gate"]["outcome"] == "fail"

    history = client.get("/v1/models/aliases/production/history", headers=auditor).json()["items"]
    assert [(h["to_model_id"], h["gate"], h["override_reason"]) for h in history] == [(served.id, "fail", reason)]
    assert history[0]["gate_result"]["checks"][0]["outcome"] == "fail"
    card = client.get(f"/v1/evaluations/{served.evaluation_id}/model-card", headers=auditor).json()
    assert card["fairaudit"]["promotions"][0]["override_reason"] == reason
    prediction = client.post("/v1/models/production/predict", headers=predictor, **multipart(noise_images(1)))
    assert prediction.status_code == 200 and prediction.json()["gate_override"] == reason
    by_id = client.post(f"/v1/models/{served.id}/predict", headers=predictor, **multipart(noise_images(1)))
    assert by_id.json()["gate_override"] is None  # no alias named: no promotion to speak of

    with session_factory() as session:
        entry = session.scalar(
            select(AuditLogEntry).where(
                AuditLogEntry.status_code == 200,
                AuditLogEntry.method == "PUT",
                AuditLogEntry.action == "PUT /v1/models/aliases/{name}",
            )
        )
    assert entry is not None and entry.detail == {"alias": "production", "gate": "fail", "override_reason": reason}

    client.put(
        "/v1/policies",
        headers=admin,
        json={"attributes": ["sex"], "checks": [{"check": "limit", "metric": "auc", "min": 0.0}]},
    )
    needless = promote(client, admin, served.id, override_reason=reason)
    assert needless.status_code == 422 and needless.json()["errors"][0]["field"] == "body.override_reason"
    again = promote(client, auditor, served.id)
    assert again.status_code == 200 and again.json()["override_reason"] is None
    after = client.post("/v1/models/production/predict", headers=predictor, **multipart(noise_images(1)))
    assert after.json()["gate_override"] is None


def test_policies_are_versioned_audited_and_bad_ones_refused(client, keys, session_factory):
    auditor, admin = keys.headers(), keys.headers(role="admin")
    first = {"attributes": ["sex"], "checks": [{"check": "limit", "metric": "pfd", "attribute": "sex", "max": 0.05}]}
    assert put_policy(client, auditor, first).status_code == 403  # policies are an admin's
    assert client.get("/v1/policies", headers=auditor).status_code == 404
    v1 = put_policy(client, admin, first).json()
    v2 = put_policy(client, admin, {**first, "min_group_positives": 20}).json()
    assert (v1["version"], v2["version"], v2["alias"]) == (1, 2, None)
    assert client.get("/v1/policies", headers=auditor).json()["id"] == v2["id"]
    assert client.get("/v1/policies?version=1", headers=auditor).json()["policy"] == v1["policy"]
    assert client.get("/v1/policies?version=3", headers=auditor).status_code == 404
    assert client.get("/v1/policies/production", headers=auditor).status_code == 404
    with session_factory() as session:
        logged = session.scalars(select(AuditLogEntry).where(AuditLogEntry.action == "PUT /v1/policies")).all()
    assert sorted((e.status_code, (e.detail or {}).get("version")) for e in logged) == [(200, 1), (200, 2), (403, None)]

    cohort = upload(client, auditor, make_zip(20)).json()
    bad = [
        (
            {**first, "checks": [{"check": "limit", "metric": "pfdd", "attribute": "sex", "max": 0.1}]},
            "body.checks.0.limit.metric",
        ),
        (
            {**first, "checks": [{"check": "limit", "metric": "pfd", "attribute": "sex", "min": 0.2, "max": 0.1}]},
            "body.checks.0.limit",
        ),
        ({**first, "checks": []}, "body.checks"),
        (
            {**first, "checks": [{"check": "group_band", "attribute": "skin", "metric": "fpr", "high": 0.2}]},
            "body.checks",
        ),
        (
            {
                "attributes": ["skin_type"],
                "checks": [{"check": "limit", "metric": "auc", "min": 0.5}],
                "cohort_id": cohort["id"],
            },
            "body.attributes.0",
        ),
    ]
    for body, field in bad:
        response = put_policy(client, admin, body, alias="production")
        assert response.status_code == 422, (body, response.json())
        assert field in [e.get("field") for e in response.json()["errors"]], (field, response.json())
    fits = put_policy(client, admin, {**first, "cohort_id": cohort["id"]}, alias="production")
    assert fits.status_code == 200 and fits.json()["version"] == 1 and fits.json()["cohort_id"] == cohort["id"]
    assert put_policy(client, admin, first, alias="Prod").status_code == 422


def test_no_evaluation_or_a_missing_attribute_is_insufficient_evidence(client, keys, settings, session_factory):
    auditor, admin = keys.headers(), keys.headers(role="admin")
    register(session_factory, settings, "mdl_bare")
    register(session_factory, settings, "mdl_measured", simulate(600, 7))
    policy = {"attributes": ["skin_type", "age"], "checks": [{"check": "limit", "metric": "auc", "min": 0.5}]}
    assert put_policy(client, admin, policy).status_code == 200
    bare = promote(client, auditor, "mdl_bare")
    assert bare.status_code == 409 and "no ready study or training evaluation" in bare.json()["errors"][0]["message"]
    gate = client.get("/v1/models/mdl_measured/gate?alias=production", headers=auditor).json()
    assert gate["outcome"] == "insufficient" and gate["missing_attributes"] == ["age"]
    assert [c["outcome"] for c in gate["checks"]] == ["pass"]
    refused = promote(client, auditor, "mdl_measured").json()
    assert [e["message"] for e in refused["errors"]] == ["the evaluation has no 'age', an attribute the policy lists"]
