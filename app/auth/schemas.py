from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.roles import ROLE_PERMISSIONS, Permission, Role
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


class Caller(BaseModel):
    """The key making the call: what a client (the console) needs to know to show only what it may do."""

    key_id: str
    name: str
    role: Role
    permissions: list[Permission] = Field(description="what this key's role may do, in a fixed order")

    @classmethod
    def of(cls, key_id: str, name: str, role: Role) -> Caller:
        return cls(
            key_id=key_id, name=name, role=role, permissions=[p for p in Permission if p in ROLE_PERMISSIONS[role]]
        )
