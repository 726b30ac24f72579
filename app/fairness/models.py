"""Evaluations and their metric rows (one row per evaluation × attribute × group × exit × metric)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column


class Evaluation(TimestampMixin, Base):
    """Predictions of a model version (or of an uploaded predictions file) on one cohort split.

    ``kind``: ``training`` (test split of the training job, or a study child's held-out fold),
    ``external`` (another cohort), ``audit`` (predictions made elsewhere) or ``study`` (a study's
    pooled out-of-fold predictions of one config; ``config.study_id`` names the study).
    """

    __tablename__ = "evaluations"

    id: Mapped[str] = id_column("evl")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), default="running")
    model_version_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"), index=True)
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    split: Mapped[str | None] = mapped_column(String(8))  # a split, a study's fold "s0/f2", or "oof"
    config: Mapped[dict[str, Any]]
    metric_definition_version: Mapped[str] = mapped_column(String(16))
    report: Mapped[dict[str, Any] | None]
    error: Mapped[str | None]


class MetricRow(Base):
    __tablename__ = "metric_rows"
    __table_args__ = (Index("ix_metric_rows_lookup", "evaluation_id", "attribute", "metric"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(128))  # "overall", an attribute, or "a×b"
    group: Mapped[str] = mapped_column(String(255))  # a group label, or "*" for a gap over groups
    exit: Mapped[str] = mapped_column(String(16))  # "0".."k", or "policy"
    metric: Mapped[str] = mapped_column(String(255))  # "tpr", or a class's or finding's "tpr[melanoma]"
    value: Mapped[float | None]
    ci_low: Mapped[float | None]
    ci_high: Mapped[float | None]
    status: Mapped[str] = mapped_column(String(16))
    n: Mapped[int | None]
