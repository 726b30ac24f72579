"""Every domain's tables in one place, so ``Base.metadata`` is complete: Alembic, job processes and tests use this."""

from app.alerts.models import Alert, AlertRule, Webhook, WebhookDelivery
from app.audit.models import AuditLogEntry
from app.auth.models import ApiKey, Organisation
from app.cohorts.models import Cohort, CohortItem
from app.db.base import Base
from app.fairness.models import Evaluation, MetricRow
from app.gates.models import FairnessPolicy
from app.jobs.models import Job, JobEvent
from app.serving.models import AliasChange, ModelAlias, ModelVersion, MonitoringCell, Prediction
from app.studies.models import Study

__all__ = [
    "Alert",
    "AlertRule",
    "AliasChange",
    "ApiKey",
    "AuditLogEntry",
    "Base",
    "Cohort",
    "CohortItem",
    "Evaluation",
    "FairnessPolicy",
    "Job",
    "JobEvent",
    "MetricRow",
    "ModelAlias",
    "ModelVersion",
    "MonitoringCell",
    "Organisation",
    "Prediction",
    "Study",
    "Webhook",
    "WebhookDelivery",
]
