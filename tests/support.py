"""Test support shared by conftest and test modules: keys for an organisation and throwaway PostgreSQL
databases. A module of its own because ``from conftest import …`` resolves to whichever of the
several conftest modules was imported last."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, ensure_organisation
from app.db.engine import make_engine, transaction
from app.db.migrate import upgrade_to_head

PG_SERVER_URL = os.environ.get("FAIRAUDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def throwaway_pg_database(admin: Engine) -> Iterator[tuple[str, str]]:
    """(name, url) of a new, migrated PostgreSQL database, dropped afterwards; ``admin`` is an
    AUTOCOMMIT engine on the server (the test server, or the one ``benchmarks/bench_soak.py`` is given)."""
    name = f"fairaudit_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        upgrade_to_head(engine)
        engine.dispose()
        yield name, url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Keys:
    """Makes organisations and keys, returning ready-to-use Authorization headers."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def headers(self, role: str = "auditor", org: str = "St Elsewhere") -> dict[str, str]:
        with transaction(self.factory) as session:
            organisation = ensure_organisation(session, org)
            _, plaintext = create_key(session, organisation.id, role)
        return {"Authorization": f"Bearer {plaintext}"}


def insert_model_version(
    factory: sessionmaker[Session],
    model_id: str,
    organisation: str,
    cohort_id: str,
    config: dict[str, Any],
    files: dict[str, str],
    thresholds: dict[str, Any],
) -> None:
    """A model version row with made-up hashes and no folder: for checks that read only the registry row
    (a teacher's organisation, cohort, architecture and files; the description of older rows)."""
    from app.serving.models import ModelVersion

    with transaction(factory) as session:
        org = ensure_organisation(session, organisation)
        session.add(
            ModelVersion(
                id=model_id,
                organisation_id=org.id,
                cohort_id=cohort_id,
                method=config["method"],
                backbone=config["backbone"],
                path=model_id,
                sha256="2" * 64,
                files=files,
                thresholds=thresholds,
                config=config,
                stage="candidate",
            )
        )
