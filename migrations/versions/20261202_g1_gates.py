"""g1: fairness policies, alias history, override reasons on aliases

``fairness_policies``: every version of an organisation's (or an alias's) policy. ``alias_history``:
every move of an alias with its deployment gate's result; each alias that exists already gets one row
for its current target, gate "no policy" (moved before there were gates). ``model_aliases.override_reason``:
the admin's reason while an alias points somewhere against a failed gate.

Revision ID: g1_gates
Revises: g3_monitoring_alerts
Create Date: 2026-12-02 07:43:20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db.base

revision: str = "g1_gates"
down_revision: str | None = "g3_monitoring_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fairness_policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("cohort_id", sa.String(length=32), nullable=True),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", app.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohorts.id"], name=op.f("fk_fairness_policies_cohort_id_cohorts")),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_fairness_policies_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fairness_policies")),
        sa.UniqueConstraint("organisation_id", "alias", "version", name=op.f("uq_fairness_policies_organisation_id")),
    )
    with op.batch_alter_table("fairness_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fairness_policies_organisation_id"), ["organisation_id"], unique=False)

    op.create_table(
        "alias_history",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("from_model_id", sa.String(length=32), nullable=True),
        sa.Column("to_model_id", sa.String(length=32), nullable=False),
        sa.Column("api_key_id", sa.String(length=32), nullable=True),
        sa.Column("gate", sa.String(length=16), nullable=False),
        sa.Column("gate_result", sa.JSON(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("created_at", app.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_model_id"], ["model_versions.id"], name=op.f("fk_alias_history_from_model_id_model_versions")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_alias_history_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_model_id"], ["model_versions.id"], name=op.f("fk_alias_history_to_model_id_model_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_history")),
    )
    with op.batch_alter_table("alias_history", schema=None) as batch_op:
        batch_op.create_index("ix_alias_history_lookup", ["organisation_id", "alias", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_alias_history_to_model_id"), ["to_model_id"], unique=False)

    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("override_reason", sa.Text(), nullable=True))

    _record_existing_aliases()


def _record_existing_aliases() -> None:
    aliases = sa.table(
        "model_aliases",
        sa.column("id", sa.Integer),
        sa.column("organisation_id", sa.String),
        sa.column("name", sa.String),
        sa.column("model_version_id", sa.String),
        sa.column("created_at", app.db.base.UTCDateTime(timezone=True)),
    )
    history = sa.table(
        "alias_history",
        sa.column("id", sa.String),
        sa.column("organisation_id", sa.String),
        sa.column("alias", sa.String),
        sa.column("to_model_id", sa.String),
        sa.column("gate", sa.String),
        sa.column("gate_result", sa.JSON),
        sa.column("created_at", app.db.base.UTCDateTime(timezone=True)),
    )
    bind = op.get_bind()
    rows = [
        {
            "id": f"alh_before_gates_{row.id}",
            "organisation_id": row.organisation_id,
            "alias": row.name,
            "to_model_id": row.model_version_id,
            "gate": "no policy",
            "gate_result": {},
            "created_at": row.created_at,
        }
        for row in bind.execute(sa.select(aliases))
    ]
    if rows:
        bind.execute(sa.insert(history), rows)


def downgrade() -> None:
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.drop_column("override_reason")

    with op.batch_alter_table("alias_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alias_history_to_model_id"))
        batch_op.drop_index("ix_alias_history_lookup")

    op.drop_table("alias_history")
    with op.batch_alter_table("fairness_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fairness_policies_organisation_id"))

    op.drop_table("fairness_policies")
