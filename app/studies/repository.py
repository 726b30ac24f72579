"""Queries for studies and their jobs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.repository import OrgScopedRepository
from app.jobs.models import Job
from app.studies.models import Study

STUDIES = OrgScopedRepository(Study, "study")
STUDY_JOB_KIND = "study"


def children(session: Session, study_id: str) -> list[Job]:
    """The study's training jobs, in the order they were queued."""
    return list(
        session.scalars(
            select(Job).where(Job.study_id == study_id, Job.kind != STUDY_JOB_KIND).order_by(Job.created_at, Job.id)
        )
    )
