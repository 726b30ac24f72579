from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
    config: dict[str, Any]
    ingest_job_id: str | None
    errors: list[dict[str, Any]]
    warnings: list[Any]
    summary: dict[str, Any] | None = Field(
        description="counts per split × label × group (per attribute and intersection), "
        "missing-attribute rates, small-group warnings"
    )
    created_at: datetime
    updated_at: datetime


class CohortList(BaseModel):
    items: list[CohortOut]
    next_cursor: str | None
