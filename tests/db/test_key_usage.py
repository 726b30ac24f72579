"""API keys' last use: written through the group-commit writer at most once a minute per key, on
SQLite and PostgreSQL, and shown by ``GET /v1/keys`` (it was returned but never written)."""

from __future__ import annotations

from live_server import wait_for
from sqlalchemy import select

from app.auth.models import ApiKey
from app.auth.service import create_key, ensure_organisation
from app.auth.usage import KeyUsage
from app.db.engine import make_engine, make_session_factory, transaction
from app.db.group_commit import GroupCommitWriter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_keys_use_is_written_once_per_resolution(database_url: str) -> None:
    engine = make_engine(database_url)
    factory, writer, clock = make_session_factory(engine), GroupCommitWriter(engine), Clock()
    usage = KeyUsage(writer, resolution_s=60, clock=clock)
    try:
        with transaction(factory) as session:
            key, _ = create_key(session, ensure_organisation(session, "org").id, "auditor")

        def last_used():
            with factory() as session:
                return session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key.id))

        assert last_used() is None
        usage.used(key.id).result(timeout=30)
        first = last_used()
        assert first is not None
        clock.now += 59
        assert usage.used(key.id) is None  # within the minute: nothing queued
        clock.now += 1
        usage.used(key.id).result(timeout=30)
        assert last_used() > first
        assert usage.used("key_unknown").result(timeout=30) is None  # no such row: nothing to update, no error
    finally:
        writer.close()
        engine.dispose()
    assert usage.used("key_late") is None  # the writer is closed (the server is stopping): not an error


def test_keys_list_their_last_use(client, keys) -> None:
    admin = keys.headers("admin")
    auditor = keys.headers("auditor")

    def listed() -> dict[str, str | None]:
        return {k["role"]: k["last_used_at"] for k in client.get("/v1/keys", headers=admin).json()["items"]}

    assert client.get("/v1/cohorts", headers=auditor).status_code == 200
    used = wait_for(lambda: listed()["auditor"], timeout=30)  # written after the answer, not before it
    assert used.endswith("Z") or "+00:00" in used
