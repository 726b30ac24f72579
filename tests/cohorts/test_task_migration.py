"""Cohorts stored before tasks existed stay binary after the ``mc_cohort_tasks`` migration."""

from __future__ import annotations

from alembic import command
from sqlalchemy import column, insert, table

from app.cohorts.models import BINARY_TASK, Cohort, CohortItem
from app.db.base import utcnow
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config


def test_cohorts_from_before_tasks_are_binary(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config()
    now = utcnow()
    cohort_columns = ("id", "organisation_id", "name", "preset", "config", "status", "progress", "n_items")
    cohort_columns += ("image_size", "channels", "attributes", "errors", "warnings", "created_at", "updated_at")
    item_columns = ("cohort_id", "position", "item_id", "image_path", "label", "split", "attributes")
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "s1_studies")
            conn.execute(
                insert(table("organisations", column("id"), column("name"), column("created_at"))),
                [{"id": "org_1", "name": "org", "created_at": now}],
            )
            conn.execute(
                insert(table("cohorts", *map(column, cohort_columns))),
                [
                    {
                        "id": "coh_old",
                        "organisation_id": "org_1",
                        "name": "old",
                        "preset": "generic",
                        "config": "{}",
                        "status": "ready",
                        "progress": 1.0,
                        "n_items": 1,
                        "image_size": 32,
                        "channels": 3,
                        "attributes": "[]",
                        "errors": "[]",
                        "warnings": "[]",
                        "created_at": now,
                        "updated_at": now,
                    }
                ],
            )
            conn.execute(
                insert(table("cohort_items", *map(column, item_columns))),
                [
                    {
                        "cohort_id": "coh_old",
                        "position": 0,
                        "item_id": "a.png",
                        "image_path": "a.png",
                        "label": 1,
                        "split": "train",
                        "attributes": "{}",
                    }
                ],
            )
            command.upgrade(config, "head")
        with make_session_factory(engine)() as session:
            cohort = session.get(Cohort, "coh_old")
            item = session.query(CohortItem).filter_by(cohort_id="coh_old").one()
            assert cohort is not None and cohort.task == BINARY_TASK
            assert item.findings is None and item.label == 1
    finally:
        engine.dispose()
