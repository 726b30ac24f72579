"""The models and the migrations agree, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.db.engine import make_engine
from app.db.migrate import is_at_head
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
