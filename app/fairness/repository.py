"""Queries for evaluations (``app.core.repository``)."""

from __future__ import annotations

from app.core.repository import OrgScopedRepository
from app.fairness.models import Evaluation

EVALUATIONS = OrgScopedRepository(Evaluation, "evaluation")
