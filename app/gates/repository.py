"""Finding an organisation's policies: the latest version of a scope, or a given one."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.repository import OrgScopedRepository
from app.gates.models import FairnessPolicy

POLICIES = OrgScopedRepository(FairnessPolicy, "fairness policy")


def find_policy(
    session: Session, organisation_id: str, scope: str, version: int | None = None
) -> FairnessPolicy | None:
    """Version ``version`` of the scope's policy (an alias, or ``ORGANISATION_SCOPE``), else its latest."""
    query = POLICIES.query(organisation_id, alias=scope, version=version)
    return session.scalar(query.order_by(FairnessPolicy.version.desc()).limit(1))


def next_version(session: Session, organisation_id: str, scope: str) -> int:
    latest = session.scalar(
        select(func.max(FairnessPolicy.version)).where(
            FairnessPolicy.organisation_id == organisation_id, FairnessPolicy.alias == scope
        )
    )
    return (latest or 0) + 1
