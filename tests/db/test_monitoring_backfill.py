"""The migration that adds the monitoring aggregates counts the predictions and outcomes already
stored: the cells equal a recount of the rows, and outcomes are numbered in the order they came."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from alembic import command
from sqlalchemy import JSON, DateTime, column, insert, select, table

from app.db.base import utcnow
from app.db.engine import make_engine, make_session_factory
from app.db.migrate import alembic_config
from app.serving import aggregates
from app.serving.models import ModelVersion, MonitoringCell, Prediction


def test_upgrade_backfills_the_aggregates(database_url: str) -> None:
    engine = make_engine(database_url)
    config = alembic_config()
    now = utcnow()
    aware = DateTime(timezone=True)
    models = table(
        "model_versions",
        *(column(c) for c in ("id", "organisation_id", "method", "backbone", "path", "sha256", "stage")),
        *(column(c, JSON()) for c in ("files", "thresholds", "config")),
        column("created_at", aware),
    )
    predictions = table(
        "predictions",
        *(column(c) for c in ("id", "organisation_id", "model_version_id", "probability", "label")),
        *(column(c) for c in ("exit_index", "confidence", "outcome")),
        column("demographics", JSON()),
        column("created_at", aware),
        column("outcome_at", aware),
    )
    sexes = ["female", "male", None]
    rows = [
        {
            "id": f"prd_{k:04d}",
            "organisation_id": "org_1",
            "model_version_id": "mdl_1",
            "probability": (k * 37 % 100) / 100,
            "label": int((k * 37 % 100) >= 50),
            "exit_index": k % 2,
            "confidence": 0.5,
            "outcome": None if k % 3 == 0 else k % 2,
            "demographics": {"sex": sexes[k % 3]} if k % 5 else None,
            "created_at": now - timedelta(days=k % 4, minutes=k),
            "outcome_at": None if k % 3 == 0 else now - timedelta(minutes=200 - k),
        }
        for k in range(120)
    ]
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "g3_truthful_rows")
            conn.execute(
                insert(table("organisations", column("id"), column("name"), column("created_at", aware))),
                [{"id": "org_1", "name": "org", "created_at": now}],
            )
            conn.execute(
                insert(models),
                [
                    {
                        "id": "mdl_1",
                        "organisation_id": "org_1",
                        "method": "erm",
                        "backbone": "small",
                        "path": "mdl_1",
                        "sha256": "0" * 64,
                        "stage": "candidate",
                        "files": {},
                        "thresholds": {"operating": 0.5, "exits": [0.9, None]},
                        "config": {},
                        "created_at": now,
                    }
                ],
            )
            conn.execute(insert(predictions), rows)
            command.upgrade(config, "head")
        with make_session_factory(engine)() as session:
            stored = session.scalars(select(Prediction).order_by(Prediction.outcome_at)).all()
            cells = Counter(
                {
                    aggregates.Key(c.model_version_id, c.day, c.block, c.attribute, c.group, c.cell): c.count
                    for c in session.scalars(select(MonitoringCell))
                }
            )
            last = session.get(ModelVersion, "mdl_1").last_outcome_seq
    finally:
        engine.dispose()
    known = [p for p in stored if p.outcome is not None]
    assert [p.outcome_seq for p in known] == list(range(1, len(known) + 1))  # in the order they came
    assert last == len(known) == 80
    recount = aggregates.prediction_counts(
        {c: getattr(p, c) for c in ("model_version_id", "created_at", "probability", "exit_index", "demographics")}
        for p in stored
    )
    for p in known:
        recount.update(aggregates.row_outcome_counts(p))
    assert cells == recount
    assert cells[aggregates.Key("mdl_1", aggregates.ALL, aggregates.ALL, "overall", "all", "n")] == 120
