"""A trained model's operations against the OpenAPI document: its real responses (multi-exit training
report, model card with exit thresholds, predictions, monitoring report) are the declared ones, and
Schemathesis aimed at the real model and its evaluation (not only at ids that do not exist) finds no
server error and no undeclared answer."""

from __future__ import annotations

from api_document import assert_documented, fuzz
from serving_helpers import json_body, noise_images

from app.fairness.models import Evaluation
from app.main import create_app


def test_model_responses_match_the_document(client, served, keys, session_factory):
    app, headers, predictor = client.app, served.headers, keys.headers("predictor")
    model = f"/v1/models/{served.id}"
    assert_documented(app, "GET", "/v1/models/{model_ref}", client.get(model, headers=headers))
    assert_documented(app, "GET", "/v1/models", client.get("/v1/models", headers=headers))
    alias = client.put("/v1/models/aliases/production", headers=headers, json={"model_version_id": served.id})
    assert_documented(app, "PUT", "/v1/models/aliases/{name}", alias)
    manifest = client.get(f"{model}/onnx", params={"file": "model.json"}, headers=headers)
    assert_documented(app, "GET", "/v1/models/{model_ref}/onnx", manifest)

    demographics = [{"sex": "female"}, {"sex": "male"}, None, {"sex": "female"}] * 2
    predicted = client.post(
        "/v1/models/production/predict", headers=predictor, **json_body(noise_images(8), demographics)
    )
    assert predicted.status_code == 200, predicted.text
    assert_documented(app, "POST", "/v1/models/{model_ref}/predict", predicted)
    for k, prediction in enumerate(predicted.json()["predictions"]):
        outcome = client.post(f"/v1/predictions/{prediction['id']}/outcome", headers=predictor, json={"outcome": k % 2})
        assert_documented(app, "POST", "/v1/predictions/{prediction_id}/outcome", outcome)
    monitoring = client.get(f"{model}/monitoring", headers=headers)
    assert monitoring.json()["metrics"] is not None
    assert_documented(app, "GET", "/v1/models/{model_ref}/monitoring", monitoring)

    evaluation = client.get(f"/v1/evaluations/{served.evaluation_id}", headers=headers)
    assert len(evaluation.json()["report"]["evaluations"]) == 6  # five exits, then the policy
    assert_documented(app, "GET", "/v1/evaluations/{evaluation_id}", evaluation)
    with session_factory() as session:
        assert evaluation.json()["report"] == session.get(Evaluation, served.evaluation_id).report
    card = client.get(f"/v1/evaluations/{served.evaluation_id}/model-card", headers=headers)
    assert len(card.json()["fairaudit"]["thresholds"]["exits"]) == 5
    assert_documented(app, "GET", "/v1/evaluations/{evaluation_id}/model-card", card)


def test_schemathesis_finds_nothing_on_a_real_model(settings, served, keys):
    unlimited = settings.model_copy(update={"anonymous_refusals_per_window": 1_000_000})
    app = create_app(unlimited, run_supervisor=False)
    admin = keys.headers("admin")
    failures = fuzz(app, admin, max_examples=10, path_parameters={"model_ref": served.id})
    failures += fuzz(app, admin, max_examples=10, path_parameters={"evaluation_id": served.evaluation_id})
    assert not failures, "\n\n".join(failures)
