"""mc: metric rows name a class or finding in the metric ("tpr[melanoma]"): metric widened to 255

Multi-class and multi-label reports (issue 14) store one row per class or finding; the class name,
which a cohort declares, is part of the metric. Existing rows are unchanged.

Revision ID: mc_metric_rows_metric
Revises: mc_cohort_tasks
Create Date: 2026-12-02 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mc_metric_rows_metric"
down_revision: str | None = "mc_cohort_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.alter_column("metric", existing_type=sa.String(length=64), type_=sa.String(length=255))


def downgrade() -> None:
    with op.batch_alter_table("metric_rows", schema=None) as batch_op:
        batch_op.alter_column("metric", existing_type=sa.String(length=255), type_=sa.String(length=64))
