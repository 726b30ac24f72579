"""Model registry: listing, details, download, aliases, integrity, organisations and roles."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

from archives import make_zip, upload
from serving_helpers import insert_model, model_columns, multipart, noise_images
from sqlalchemy import select

from app.serving.models import ModelVersion


def test_list_and_get_model(client, served, settings, session_factory):
    response = client.get("/v1/models", headers=served.headers)
    assert response.status_code == 200, response.json()
    page = response.json()
    assert [m["id"] for m in page["items"]] == [served.id] and page["next_cursor"] is None
    model = client.get(f"/v1/models/{served.id}", headers=served.headers).json()
    manifest_bytes = (served.folder / "model.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    assert model["sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert model["files"] == {name: info["sha256"] for name, info in manifest["files"].items()}
    assert model["thresholds"] == {
        "operating": manifest["operating_threshold"],
        "exits": manifest["exit_thresholds"],
        "rule": manifest["operating_threshold_rule"],
    }
    assert model["method"] == "fair_multi_exit_pairwise_eo" and model["config"]["epochs"] == 2
    assert model["evaluation_id"] == served.evaluation_id
    assert model["stage"] == "candidate" and model["aliases"] == []


def test_pages_and_download(client, served, settings, session_factory):
    second = model_columns(served.folder, "mdl_second", method="erm")
    insert_model(session_factory, settings, served.folder, second)
    first_page = client.get("/v1/models?limit=1", headers=served.headers).json()
    assert len(first_page["items"]) == 1 and first_page["next_cursor"]
    rest = client.get(f"/v1/models?limit=1&cursor={first_page['next_cursor']}", headers=served.headers).json()
    assert {first_page["items"][0]["id"], rest["items"][0]["id"]} == {served.id, "mdl_second"}

    response = client.get(f"/v1/models/{served.id}/onnx", headers=served.headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = {n.removeprefix(f"{served.id}/") for n in zf.namelist()}
        assert names == {p.name for p in served.folder.iterdir()}
        for name in names:
            assert zf.read(f"{served.id}/{name}") == (served.folder / name).read_bytes()
    one = client.get(f"/v1/models/{served.id}/onnx?file=stage_0.onnx", headers=served.headers)
    assert one.status_code == 200 and one.content == (served.folder / "stage_0.onnx").read_bytes()
    missing = client.get(f"/v1/models/{served.id}/onnx?file=../secrets", headers=served.headers)
    assert missing.status_code == 404 and "stage_0.onnx" in missing.json()["detail"]


def test_alias_promotes_and_addresses_a_version(client, served, settings, session_factory, keys):
    insert_model(session_factory, settings, served.folder, model_columns(served.folder, "mdl_second"))
    put = client.put("/v1/models/aliases/production", headers=served.headers, json={"model_version_id": served.id})
    assert put.status_code == 200, put.json()
    assert put.json()["name"] == "production" and put.json()["model_version_id"] == served.id
    model = client.get("/v1/models/production", headers=served.headers).json()
    assert model["id"] == served.id and model["stage"] == "promoted" and model["aliases"] == ["production"]

    predictor = keys.headers(role="predictor")
    result = client.post("/v1/models/production/predict", headers=predictor, **multipart(noise_images(1)))
    assert result.status_code == 200, result.json()
    assert result.json()["model_id"] == served.id and result.json()["alias"] == "production"

    client.put("/v1/models/aliases/production", headers=served.headers, json={"model_version_id": "mdl_second"})
    assert client.get(f"/v1/models/{served.id}", headers=served.headers).json()["stage"] == "candidate"
    assert client.get("/v1/models/production", headers=served.headers).json()["id"] == "mdl_second"
    moved = client.post("/v1/models/production/predict", headers=predictor, **multipart(noise_images(1)))
    assert moved.json()["model_id"] == "mdl_second"  # the alias is looked up again, not cached with the model

    for bad in ("Prod", "mdl_x", "pro_d", "aliases", "-x"):
        response = client.put(f"/v1/models/aliases/{bad}", headers=served.headers, json={"model_version_id": served.id})
        assert response.status_code == 422 and "alias" in response.json()["detail"], bad
    unknown = client.put("/v1/models/aliases/shadow", headers=served.headers, json={"model_version_id": "mdl_nope"})
    assert unknown.status_code == 404
    forbidden = client.put("/v1/models/aliases/shadow", headers=predictor, json={"model_version_id": served.id})
    assert forbidden.status_code == 403
    assert client.get("/v1/models/shadow", headers=served.headers).status_code == 404


def test_every_model_route_takes_an_alias(client, served, run_jobs):
    """Wherever a model id is accepted an alias is too; external evaluation once answered 404 for one."""
    headers = served.headers
    cohort = upload(client, headers, make_zip(40)).json()
    run_jobs()
    client.put("/v1/models/aliases/production", headers=headers, json={"model_version_id": served.id})
    for suffix in ("", "/monitoring"):
        by_alias = client.get(f"/v1/models/production{suffix}", headers=headers)
        assert by_alias.status_code == 200, (suffix, by_alias.json())
        assert by_alias.json() == client.get(f"/v1/models/{served.id}{suffix}", headers=headers).json()
    download = client.get("/v1/models/production/onnx?file=model.json", headers=headers)
    assert download.status_code == 200 and download.content == (served.folder / "model.json").read_bytes()

    body = {"cohort_id": cohort["id"], "split": "all"}
    started = client.post("/v1/models/production/evaluate", headers=headers, json=body)
    assert started.status_code == 202, started.json()
    assert started.json()["kind"] == "evaluate" and started.json()["config"]["model_version_id"] == served.id
    unknown = client.post("/v1/models/staging/evaluate", headers=headers, json=body)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "model alias 'staging' not found"


def test_another_organisation_gets_404_everywhere(client, served, keys):
    client.put("/v1/models/aliases/production", headers=served.headers, json={"model_version_id": served.id})
    prediction = client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **multipart(noise_images(1)))
    prediction_id = prediction.json()["predictions"][0]["id"]
    other = keys.headers(org="Elsewhere General")
    for ref in (served.id, "production"):
        assert client.get(f"/v1/models/{ref}", headers=other).status_code == 404
        assert client.get(f"/v1/models/{ref}/onnx", headers=other).status_code == 404
        assert client.get(f"/v1/models/{ref}/monitoring", headers=other).status_code == 404
        assert client.post(f"/v1/models/{ref}/predict", headers=other, **multipart(noise_images(1))).status_code == 404
    assert client.get("/v1/models", headers=other).json()["items"] == []
    alias = client.put("/v1/models/aliases/production", headers=other, json={"model_version_id": served.id})
    assert alias.status_code == 404
    outcome = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=other, json={"outcome": 1})
    assert outcome.status_code == 404


def test_a_predictor_predicts_and_posts_outcomes_but_cannot_upload_train_or_read(client, served, keys):
    predictor = keys.headers(role="predictor")
    response = client.post(f"/v1/models/{served.id}/predict", headers=predictor, **multipart(noise_images(2)))
    assert response.status_code == 200, response.json()
    prediction_id = response.json()["predictions"][0]["id"]
    outcome = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=predictor, json={"outcome": 1})
    assert outcome.status_code == 200 and outcome.json()["outcome"] == 1
    upload = client.post("/v1/cohorts", headers=predictor, files={"archive": ("c.zip", b"PK")}, data={"config": "{}"})
    assert upload.status_code == 403
    assert client.post("/v1/jobs", headers=predictor, json={"cohort_id": "coh_x", "method": "erm"}).status_code == 403
    assert client.get("/v1/models", headers=predictor).status_code == 403
    assert client.get(f"/v1/models/{served.id}/onnx", headers=predictor).status_code == 403
    assert client.post(f"/v1/models/{served.id}/predict", **multipart(noise_images(1))).status_code == 401


def test_a_tampered_model_is_refused(client, served):
    images = multipart(noise_images(1))
    assert client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **images).status_code == 200
    stage = served.folder / "stage_1.onnx"
    original = stage.read_bytes()
    stage.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one bit, same size
    for response in (
        client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **images),
        client.get(f"/v1/models/{served.id}/onnx", headers=served.headers),
        client.get(f"/v1/models/{served.id}/onnx?file=stage_1.onnx", headers=served.headers),
    ):
        assert response.status_code == 409, response.status_code
        assert "stage_1.onnx does not match its recorded SHA-256" in response.json()["detail"]
    stage.write_bytes(original)
    assert client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **images).status_code == 200
    manifest = served.folder / "model.json"
    manifest.write_text(manifest.read_text().replace('"operating_threshold": ', '"operating_threshold": 0.0 + '))
    refused = client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **images)
    assert refused.status_code == 409 and "model.json" in refused.json()["detail"]


def test_a_model_still_training_is_409_and_unknown_ones_404(client, served, session_factory):
    from app.db.engine import transaction
    from app.jobs.models import Job

    with transaction(session_factory) as session:
        organisation_id = session.scalar(select(ModelVersion.organisation_id).where(ModelVersion.id == served.id))
        job = Job(id="job_t", organisation_id=organisation_id, kind="train", status="running", config={})
        session.add(job)
        job.model_version_id = "mdl_pending"  # named when the job was queued (not derived from the job's id)
    images = multipart(noise_images(1))
    pending = client.post("/v1/models/mdl_pending/predict", headers=served.headers, **images)
    assert pending.status_code == 409 and "job_t is running" in pending.json()["detail"]
    assert client.post("/v1/models/mdl_t/predict", headers=served.headers, **images).status_code == 404
    with transaction(session_factory) as session:
        session.get(Job, "job_t").status = "failed"
    assert client.post("/v1/models/mdl_pending/predict", headers=served.headers, **images).status_code == 404
    assert client.post("/v1/models/mdl_unknown/predict", headers=served.headers, **images).status_code == 404
    assert client.post("/v1/models/staging/predict", headers=served.headers, **images).status_code == 404
