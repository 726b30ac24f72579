from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.modelpkg.task import TaskKind


class CohortOut(BaseModel):
    id: str
    name: str
    preset: str
    status: str = Field(description="ingesting, ready, failed or deleted")
    progress: float = Field(description="fraction of images decoded")
    n_items: int
    image_size: int
    channels: int
    attributes: list[str]
    task: TaskKind = Field(description="binary, multiclass or multilabel")
    classes: list[str] = Field(
        description="multiclass: the classes in logit order; multilabel: the findings; binary: []"
    )
    config: dict[str, Any]
    ingest_job_id: str | None
    errors: list[dict[str, Any]]
    warnings: list[Any]
    summary: dict[str, Any] | None = Field(
        description="counts per split × label (multiclass: class; multilabel: finding) × group (per attribute "
        "and intersection), missing-attribute rates, small-group warnings, merged classes"
    )
    created_at: datetime
    updated_at: datetime


class CohortList(BaseModel):
    items: list[CohortOut]
    next_cursor: str | None
