"""Accounts: keys, roles, organisation isolation and the audit trail, over real HTTP."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from app.audit.models import AuditLogEntry
from app.auth.models import ApiKey


def test_missing_and_wrong_keys_are_401(client: TestClient) -> None:
    response = client.get("/v1/jobs")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert "missing API key" in response.json()["detail"]
    for value in ("Bearer nonsense", "Bearer fa_abc_def", "Basic abc"):
        assert client.get("/v1/jobs", headers={"Authorization": value}).status_code == 401


def test_key_is_stored_hashed_and_shown_once(client: TestClient, keys, session_factory) -> None:
    admin = keys.headers("admin")
    created = client.post("/v1/keys", json={"role": "predictor", "name": "PACS"}, headers=admin)
    assert created.status_code == 201
    plaintext = created.json()["key"]
    with session_factory() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.id == created.json()["id"]))
        assert row is not None and plaintext.split("_", 2)[2] not in (row.secret_hash, row.prefix)
    listed = client.get("/v1/keys", headers=admin).json()["items"]
    assert all("key" not in item for item in listed)
    assert {item["role"] for item in listed} == {"admin", "predictor"}


def test_revoked_key_stops_working(client: TestClient, keys) -> None:
    admin = keys.headers("admin")
    created = client.post("/v1/keys", json={"role": "auditor"}, headers=admin).json()
    auditor = {"Authorization": f"Bearer {created['key']}"}
    assert client.get("/v1/jobs", headers=auditor).status_code == 200
    assert client.delete(f"/v1/keys/{created['id']}", headers=admin).status_code == 200
    assert client.get("/v1/jobs", headers=auditor).status_code == 401


def test_roles_are_enforced(client: TestClient, keys) -> None:
    predictor = keys.headers("predictor")
    auditor = keys.headers("auditor")
    assert client.get("/v1/jobs", headers=predictor).status_code == 403
    assert client.post("/v1/keys", json={"role": "admin"}, headers=auditor).status_code == 403
    assert client.get("/v1/jobs", headers=auditor).status_code == 200


def test_another_organisations_key_is_404(client: TestClient, keys) -> None:
    admin_a = keys.headers("admin", org="A")
    admin_b = keys.headers("admin", org="B")
    key_id = client.post("/v1/keys", json={"role": "auditor"}, headers=admin_a).json()["id"]
    assert client.delete(f"/v1/keys/{key_id}", headers=admin_b).status_code == 404
    assert client.get("/v1/jobs/job_doesnotexist", headers=admin_b).status_code == 404


def test_every_state_changing_call_is_audited(client: TestClient, keys, session_factory) -> None:
    admin = keys.headers("admin")
    created = client.post("/v1/keys", json={"role": "auditor"}, headers=admin)
    client.post("/v1/keys", json={"role": "bogus"}, headers=admin)  # rejected, still audited
    client.post("/v1/keys", json={"role": "auditor"})  # unauthenticated, still audited
    with session_factory() as session:
        rows = session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)).all()
    assert [(r.action, r.status_code) for r in rows] == [
        ("POST /v1/keys", 201),
        ("POST /v1/keys", 422),
        ("POST /v1/keys", 401),
    ]
    assert rows[0].resource_id == created.json()["id"]
    assert rows[0].organisation_id is not None and rows[2].organisation_id is None


def test_health_and_readiness(client: TestClient, keys) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert "fairaudit_jobs" in client.get("/metrics", headers=keys.headers("predictor")).text


def test_a_key_reads_its_own_name_role_and_permissions(client: TestClient, keys) -> None:
    admin = keys.headers("admin")
    created = client.post("/v1/keys", json={"role": "predictor", "name": "PACS bridge"}, headers=admin).json()
    me = client.get("/v1/keys/me", headers={"Authorization": f"Bearer {created['key']}"})
    assert me.status_code == 200
    assert me.json() == {
        "key_id": created["id"],
        "name": "PACS bridge",
        "role": "predictor",
        "permissions": ["predict"],
    }
    assert client.get("/v1/keys/me", headers=admin).json()["permissions"] == ["manage_keys", "read", "write", "predict"]
    client.delete(f"/v1/keys/{created['id']}", headers=admin)
    assert client.get("/v1/keys/me", headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401
    assert client.get("/v1/keys/me").status_code == 401
