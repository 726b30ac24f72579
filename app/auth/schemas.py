from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.roles import Role
from app.core.fields import SafeText


class KeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "predictor", "name": "PACS bridge"}]})

    role: Role
    name: SafeText = ""


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: str
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when the key last authenticated a call, to within a minute (null: never used)"
    )
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. Shown once: only its hash is stored.")


class KeyList(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None = None
