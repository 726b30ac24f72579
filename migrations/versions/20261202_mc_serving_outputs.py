"""mc_serving: multi-class and multi-label predictions

``predictions.output``: the served probabilities (and per-finding decisions) of a multiclass or
multilabel model; ``predictions.outcome_findings``: a multilabel outcome, one 0/1/null per finding.
Both nullable: binary rows, old and new, leave them empty and keep their meaning.

Revision ID: mc_serving
Revises: mc_metric_rows_metric
Create Date: 2026-12-02 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mc_serving"
down_revision: str | None = "mc_metric_rows_metric"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("outcome_findings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("outcome_findings")
        batch_op.drop_column("output")
