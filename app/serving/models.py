"""Model versions, per-organisation aliases and served predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column

PREDICTION_ID_PREFIX = "prd"


class ModelVersion(TimestampMixin, Base):
    """The exported ONNX stages of one successful training job, frozen thresholds included."""

    __tablename__ = "model_versions"

    id: Mapped[str] = id_column("mdl")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    method: Mapped[str] = mapped_column(String(64))
    backbone: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))  # of model.json, which lists every file's hash
    files: Mapped[dict[str, Any]]
    thresholds: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any]]
    stage: Mapped[str] = mapped_column(String(16), default="candidate")


class ModelAlias(TimestampMixin, Base):
    """A named pointer (e.g. ``production``) to a model version, unique per organisation."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))


class Prediction(TimestampMixin, Base):
    __tablename__ = "predictions"

    id: Mapped[str] = id_column(PREDICTION_ID_PREFIX)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    probability: Mapped[float]
    label: Mapped[int]
    exit_index: Mapped[int]
    confidence: Mapped[float]
    demographics: Mapped[dict[str, Any] | None]
    outcome: Mapped[int | None]
    outcome_at: Mapped[datetime | None]
