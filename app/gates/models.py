"""Fairness policies: every change is a new version row; the old ones are kept."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column

ORGANISATION_SCOPE = "*"  # the ``alias`` of an organisation-wide policy (no alias name can be "*")


class FairnessPolicy(TimestampMixin, Base):
    """Version ``version`` of the policy of one alias of an organisation, or of the whole organisation
    (``alias == "*"``). ``policy`` is an ``app.fairness.policy.Policy`` as JSON; ``cohort_id`` is the
    cohort its attributes were checked against, if one was named."""

    __tablename__ = "fairness_policies"
    __table_args__ = (UniqueConstraint("organisation_id", "alias", "version"),)

    id: Mapped[str] = id_column("pol")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    policy: Mapped[dict[str, Any]]
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    api_key_id: Mapped[str | None] = mapped_column(String(32))
