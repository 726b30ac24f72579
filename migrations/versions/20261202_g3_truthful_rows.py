"""g3: a training job names its model version; failed audit evaluations say so

``jobs.model_version_id``: the id of the model version a training job registers when it succeeds,
given when the job is queued. It replaces deriving one id from the other by swapping their prefixes;
jobs queued before this migration had their version named exactly that way, so that is what they get.

Evaluations of audit jobs that failed or were cancelled were left ``running`` (the API worked their
status out from the job on every read); they now carry ``failed`` and the job's reason themselves.

Revision ID: g3_truthful_rows
Revises: 01e7f1c983a2
Create Date: 2026-12-02 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "g3_truthful_rows"
down_revision: str | None = "01e7f1c983a2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_version_id", sa.String(length=32), nullable=True))
        # a unique index, not a constraint: SQLite adds it in place (a constraint means copying the
        # table, which its foreign-key checks refuse while other tables' rows point at jobs)
        batch_op.create_index(batch_op.f("ix_jobs_model_version_id"), ["model_version_id"], unique=True)
    op.execute("UPDATE jobs SET model_version_id = 'mdl_' || substr(id, 5) WHERE kind = 'train'")
    op.execute(
        "UPDATE evaluations SET status = 'failed', error = ("
        " SELECT coalesce(jobs.error, 'the audit job was ' || jobs.status) FROM jobs WHERE jobs.id = evaluations.job_id"
        ") WHERE status = 'running' AND job_id IN (SELECT id FROM jobs WHERE status IN ('failed', 'cancelled'))"
    )


def downgrade() -> None:
    op.execute("UPDATE evaluations SET status = 'running', error = NULL WHERE status = 'failed'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_model_version_id"))
        batch_op.drop_column("model_version_id")
