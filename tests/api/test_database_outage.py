"""A PostgreSQL outage answers 503 problem documents (not 500s) and the service recovers by itself."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from support import Keys, throwaway_pg_database

from app.db.engine import make_engine, make_session_factory
from app.main import create_app
from app.settings import Settings


def set_connections(admin: Engine, name: str, allowed: bool) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:  # and drop the pooled ones: the next checkout must reconnect and fail
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )


def test_database_outage_answers_503_then_recovers(pg_admin: Engine, tmp_path: Path) -> None:
    with throwaway_pg_database(pg_admin) as (name, url):
        settings = Settings(environment="test", database_url=url, data_dir=tmp_path / "data", model_dir=tmp_path / "m")
        engine = make_engine(url)
        headers = Keys(make_session_factory(engine)).headers(role="admin")
        engine.dispose()
        with TestClient(create_app(settings, run_supervisor=False)) as client:
            assert client.get("/v1/models", headers=headers).status_code == 200
            set_connections(pg_admin, name, allowed=False)
            try:
                for method, path in [("GET", "/v1/models"), ("POST", "/v1/keys")]:
                    response = client.request(method, path, headers=headers, json={"role": "predictor"})
                    assert response.status_code == 503, (method, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.headers["retry-after"] == "5"
                    assert "database is unavailable" in response.json()["detail"]
            finally:
                set_connections(pg_admin, name, allowed=True)
            assert client.get("/v1/models", headers=headers).status_code == 200
            created = client.post("/v1/keys", headers=headers, json={"role": "predictor"})
            assert created.status_code == 201, created.text
