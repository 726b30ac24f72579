"""g3 (issue 13): live monitoring aggregates, alert rules, alerts and webhooks

``monitoring_cells`` holds counters of predictions and outcomes per model × attribute × group × day
(``app.serving.aggregates``); ``predictions.outcome_seq`` and ``model_versions.last_outcome_seq``
number each model's outcomes for "the last K outcomes". The cells are backfilled here from the
predictions already stored (outcomes numbered in the order they were recorded).

Revision ID: g3_monitoring_alerts
Revises: g3_truthful_rows
Create Date: 2026-12-02 08:00:00
"""

from collections import Counter
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "g3_monitoring_alerts"
down_revision: str | None = "g3_truthful_rows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL_BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_outcome_seq", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome_seq", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_predictions_outcome_seq", ["model_version_id", "outcome_seq"], unique=False)
    op.create_table(
        "monitoring_cells",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("model_version_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("group", sa.String(length=128), nullable=False),
        sa.Column("cell", sa.String(length=16), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_monitoring_cells_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_cells")),
        sa.UniqueConstraint(
            "model_version_id", "day", "block", "attribute", "group", "cell", name="uq_monitoring_cell"
        ),
    )
    _create_alert_tables()
    _backfill(op.get_bind())


def _id(prefix_table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{prefix_table}"))


def _fk(table: str, column: str, target: str, ondelete: str | None = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _create_alert_tables() -> None:
    """Alert rules, alerts, webhooks and webhook deliveries (``app.alerts``)."""
    aware = sa.DateTime(timezone=True)
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_ref", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=True),
        sa.Column("last_outcomes", sa.Integer(), nullable=True),
        sa.Column("min_n", sa.Integer(), nullable=False),
        sa.Column("min_interval_seconds", sa.Double(), nullable=False),
        sa.Column("last_evaluated_at", aware, nullable=True),
        sa.Column("last_outcome", sa.String(length=16), nullable=True),
        sa.Column("deleted_at", aware, nullable=True),
        sa.Column("created_at", aware, nullable=False),
        _fk("alert_rules", "organisation_id", "organisations"),
        _id("alert_rules"),
    )
    op.create_index(op.f("ix_alert_rules_organisation_id"), "alert_rules", ["organisation_id"], unique=False)
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=32), nullable=False),
        sa.Column("model_version_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("resolved_at", aware, nullable=True),
        sa.Column("created_at", aware, nullable=False),
        _fk("alerts", "organisation_id", "organisations"),
        _fk("alerts", "rule_id", "alert_rules", None),
        _fk("alerts", "model_version_id", "model_versions", None),
        _id("alerts"),
    )
    op.create_index(op.f("ix_alerts_organisation_id"), "alerts", ["organisation_id"], unique=False)
    op.create_index(op.f("ix_alerts_rule_id"), "alerts", ["rule_id"], unique=False)
    firing = sa.text("status = 'firing'")
    op.create_index(
        "uq_alerts_firing",
        "alerts",
        ["rule_id", "model_version_id"],
        unique=True,
        sqlite_where=firing,
        postgresql_where=firing,
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("disabled_reason", sa.String(), nullable=True),
        sa.Column("deleted_at", aware, nullable=True),
        sa.Column("created_at", aware, nullable=False),
        _fk("webhooks", "organisation_id", "organisations"),
        _id("webhooks"),
    )
    op.create_index(op.f("ix_webhooks_organisation_id"), "webhooks", ["organisation_id"], unique=False)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("webhook_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", aware, nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_response", sa.String(), nullable=True),
        sa.Column("delivered_at", aware, nullable=True),
        sa.Column("created_at", aware, nullable=False),
        _fk("webhook_deliveries", "organisation_id", "organisations"),
        _fk("webhook_deliveries", "webhook_id", "webhooks"),
        _id("webhook_deliveries"),
    )
    op.create_index(op.f("ix_webhook_deliveries_webhook_id"), "webhook_deliveries", ["webhook_id"], unique=False)
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"], unique=False)


def _backfill(conn: sa.Connection) -> None:
    """Count every stored prediction and outcome into the new cells, as if they had just arrived."""
    from app.serving import aggregates  # the counting rule itself, so the backfill cannot differ from it

    predictions = sa.table(
        "predictions",
        *(sa.column(c) for c in ("id", "model_version_id", "probability", "label", "exit_index")),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("demographics", sa.JSON()),
        sa.column("outcome"),
        sa.column("outcome_at", sa.DateTime(timezone=True)),
        sa.column("outcome_seq"),
    )
    models = sa.table("model_versions", sa.column("id"), sa.column("last_outcome_seq"))
    order = (predictions.c.model_version_id, predictions.c.created_at, predictions.c.id)
    rows = conn.execute(sa.select(predictions).order_by(*order)).mappings()
    while batch := [_aware(dict(r)) for r in rows.fetchmany(BACKFILL_BATCH)]:
        aggregates.add(conn, aggregates.prediction_counts(batch))
    known = sa.select(predictions).where(predictions.c.outcome.is_not(None))
    seq: Counter[str] = Counter()
    outcomes = conn.execute(known.order_by(predictions.c.model_version_id, predictions.c.outcome_at, predictions.c.id))
    while batch := [_aware(dict(r)) for r in outcomes.mappings().fetchmany(BACKFILL_BATCH)]:
        counts: Counter[aggregates.Key] = Counter()
        numbered = []
        for row in batch:
            seq[row["model_version_id"]] += 1
            numbered.append({"id": row["id"], "s": seq[row["model_version_id"]]})
            counts.update(
                aggregates.outcome_counts(
                    row["model_version_id"],
                    at=row["outcome_at"] or row["created_at"],
                    seq=seq[row["model_version_id"]],
                    probability=row["probability"],
                    label=row["label"],
                    outcome=row["outcome"],
                    demographics=row["demographics"],
                )
            )
        aggregates.add(conn, counts)
        conn.execute(
            predictions.update().where(predictions.c.id == sa.bindparam("pid")).values(outcome_seq=sa.bindparam("s")),
            [{"pid": n["id"], "s": n["s"]} for n in numbered],
        )
    for model_id, last in seq.items():
        conn.execute(models.update().where(models.c.id == model_id).values(last_outcome_seq=last))


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """Timestamps as UTC-aware datetimes (SQLite returns them naive)."""
    for name in ("created_at", "outcome_at"):
        if row[name] is not None and row[name].tzinfo is None:
            row[name] = row[name].replace(tzinfo=UTC)
    return row


def downgrade() -> None:
    for table in ("webhook_deliveries", "webhooks", "alerts", "alert_rules", "monitoring_cells"):
        op.drop_table(table)
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_index("ix_predictions_outcome_seq")
        batch_op.drop_column("outcome_seq")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("last_outcome_seq")
