"""Queries for evaluations and their metric rows (``app.core.repository``)."""

from __future__ import annotations

from sqlalchemy import Select, select

from app.core.repository import OrgScopedRepository, where_equal
from app.fairness.models import Evaluation, MetricRow

EVALUATIONS = OrgScopedRepository(Evaluation, "evaluation")


def metric_rows_query(evaluation_id: str, **filters: str | None) -> Select[MetricRow]:
    """An evaluation's metric rows, narrowed by column values (``None``: any)."""
    return where_equal(select(MetricRow).where(MetricRow.evaluation_id == evaluation_id), MetricRow, **filters)
