"""Every domain's tables in one place, so ``Base.metadata`` is complete: Alembic, job processes and tests use this."""

from app.audit.models import AuditLogEntry
from app.auth.models import ApiKey, Organisation
from app.cohorts.models import Cohort, CohortItem
from app.db.base import Base
from app.fairness.models import Evaluation, MetricRow
from app.jobs.models import Job, JobEvent
from app.serving.models import ModelAlias, ModelVersion, Prediction
from app.studies.models import Study

__all__ = [
    "ApiKey",
    "AuditLogEntry",
    "Base",
    "Cohort",
    "CohortItem",
    "Evaluation",
    "Job",
    "JobEvent",
    "MetricRow",
    "ModelAlias",
    "ModelVersion",
    "Organisation",
    "Prediction",
    "Study",
]
