"""Queries for cohorts: an organisation's cohorts, deleted ones left out (``app.core.repository``)."""

from __future__ import annotations

from app.cohorts.models import Cohort
from app.core.repository import OrgScopedRepository

COHORTS = OrgScopedRepository(Cohort, "cohort")
