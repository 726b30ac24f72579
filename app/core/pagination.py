"""Keyset pagination, stable while rows are being added: resources over (created_at, id), newest
first; rows that belong to one resource (an evaluation's metric rows) over their integer id, in the
order they were written. A cursor is opaque to clients: the position of the last row of a page."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.core.errors import InputError
from app.core.fields import RESOURCE_REF

MAX_LIMIT = 200
#: The ``limit`` query parameter of every list route: out of bounds is a 422 naming it.
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1 to {MAX_LIMIT}")]
DEFAULT_LIMIT = 50


def encode_cursor(created_at: datetime, ident: str) -> str:
    return _pack([created_at.isoformat(), ident])


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor holds. Only what ``encode_cursor`` writes is accepted: a timestamp with its
    UTC offset (a naive one has no place in time to compare with) and an id-shaped string."""
    try:
        created, ident = _unpack(cursor)
        at = datetime.fromisoformat(created)
        utc = at.astimezone(UTC) if at.tzinfo is not None else None  # out-of-range offsets fail here
    except Exception:
        raise _bad_cursor("it is not a cursor this API issued") from None
    if utc is None:
        raise _bad_cursor("its timestamp has no UTC offset")
    if not isinstance(ident, str) or not RESOURCE_REF.fullmatch(ident):
        raise _bad_cursor("its id is not an id")
    return utc, ident


def _pack(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _unpack(cursor: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _bad_cursor(reason: str) -> InputError:
    return InputError(
        "invalid cursor: pass the next_cursor of a previous page unchanged",
        [{"field": "cursor", "message": reason}],
        status=400,
    )


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be between 1 and {MAX_LIMIT}", status=400)


def paginate(
    session: Session, query: Select[Any], model: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    _check_limit(limit)
    if cursor:
        created, ident = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < ident)))
    rows = list(session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def paginate_in_order(
    session: Session, query: Select[Any], key: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``query`` in ascending order of its integer column ``key``."""
    _check_limit(limit)
    if cursor:
        try:
            (after,) = _unpack(cursor)
        except Exception:
            raise _bad_cursor("it is not a cursor this API issued") from None
        if not isinstance(after, int) or isinstance(after, bool):
            raise _bad_cursor("its position is not a row number")
        query = query.where(key > after)
    rows = list(session.scalars(query.order_by(key).limit(limit + 1)))
    next_cursor = _pack([getattr(rows[limit - 1], key.key)]) if len(rows) > limit else None
    return rows[:limit], next_cursor
