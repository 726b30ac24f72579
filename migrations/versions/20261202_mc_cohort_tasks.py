"""mc: a cohort's task (binary, multiclass, multilabel) and multi-label items' finding vectors

``cohorts.task``: the task's kind, class (finding) names in logit order and merged classes; cohorts
uploaded before tasks existed are binary (the server default). ``cohort_items.findings``: a
multi-label item's finding vector (1 / 0 / -1 = unknown); null for binary and multiclass items.

Revision ID: mc_cohort_tasks
Revises: s1_studies
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mc_cohort_tasks"
down_revision: str | None = "s1_studies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BINARY_TASK_JSON = '{"kind": "binary", "classes": [], "merged": {}}'


def upgrade() -> None:
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task", sa.JSON(), server_default=BINARY_TASK_JSON, nullable=False))
    with op.batch_alter_table("cohort_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("findings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cohort_items", schema=None) as batch_op:
        batch_op.drop_column("findings")
    with op.batch_alter_table("cohorts", schema=None) as batch_op:
        batch_op.drop_column("task")
