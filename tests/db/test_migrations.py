"""The models and the migrations agree, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import column, insert, inspect, table

from app.db.base import utcnow
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config, is_at_head
from app.fairness.models import Evaluation
from app.jobs.models import Job
from app.models import Base


def test_autogenerate_finds_no_difference(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert is_at_head(engine)
    engine.dispose()
    assert diff == [], diff


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_constraints_are_named_by_convention(database_url: str) -> None:
    engine = make_engine(database_url)
    fks = inspect(engine).get_foreign_keys("api_keys")
    engine.dispose()
    assert [fk["name"] for fk in fks] == ["fk_api_keys_organisation_id_organisations"]


def test_g3_names_training_jobs_model_versions_and_fails_abandoned_audit_evaluations(database_url: str) -> None:
    """Rows written before ``g3_truthful_rows``: a training job gets the model version id its run
    derived from its own id, and an audit evaluation whose job failed is ``failed`` with the job's reason."""
    engine = make_engine(database_url)
    config = alembic_config()
    now = utcnow()
    jobs = table(
        *("jobs", column("id"), column("organisation_id"), column("kind"), column("status")),
        *(column(c) for c in ("config", "progress", "history", "error", "attempt", "max_attempts")),
        column("created_at"),
        column("updated_at"),
    )
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "01e7f1c983a2")
            conn.execute(
                insert(table("organisations", column("id"), column("name"), column("created_at"))),
                [{"id": "org_1", "name": "org", "created_at": now}],
            )
            common = {
                "organisation_id": "org_1",
                "config": "{}",
                "progress": "{}",
                "history": "[]",
                "attempt": 1,
                "max_attempts": 1,
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(
                insert(jobs),
                [
                    {**common, "id": "job_abc", "kind": "train", "status": "running", "error": None},
                    {**common, "id": "job_gone", "kind": "audit", "status": "failed", "error": "it crashed"},
                    {**common, "id": "job_off", "kind": "audit", "status": "cancelled", "error": None},
                ],
            )
            evaluations = table(
                *("evaluations", column("id"), column("organisation_id"), column("kind")),
                *(column(c) for c in ("status", "job_id", "config", "metric_definition_version")),
                column("name"),
                column("created_at"),
            )
            conn.execute(
                insert(evaluations),
                [
                    {
                        "id": f"evl_{j}",
                        "organisation_id": "org_1",
                        "kind": "audit",
                        "status": "running",
                        "job_id": f"job_{j}",
                        "config": "{}",
                        "metric_definition_version": "1.0",
                        "name": "",
                        "created_at": now,
                    }
                    for j in ("gone", "off")
                ],
            )
            command.upgrade(config, "head")
        with make_session_factory(engine)() as session:
            assert session.get(Job, "job_abc").model_version_id == "mdl_abc"
            assert session.get(Job, "job_gone").model_version_id is None
            failed = [(e.status, e.error) for e in (session.get(Evaluation, f"evl_{j}") for j in ("gone", "off"))]
        assert failed == [("failed", "it crashed"), ("failed", "the audit job was cancelled")]
    finally:
        engine.dispose()
