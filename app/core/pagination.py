"""Keyset pagination over (created_at, id), newest first: stable while rows are being added."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import InputError

T = TypeVar("T")
MAX_LIMIT = 200


def encode_cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ident = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(ident)
    except Exception:
        raise InputError("invalid cursor: pass the next_cursor of a previous page unchanged", status=400) from None


def paginate(
    session: Session, query: Select[Any], model: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", status=400)
    if cursor:
        created, ident = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < ident)))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor
