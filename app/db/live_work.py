"""Folders that work in this process is writing right now, so the orphan sweep leaves them alone.

A request writes a new cohort's (or evaluation's) folder before the row that owns it is committed:
until then the folder looks like an orphan from the database. ``hold_until_settled`` marks it live
from before its first write until the request's transaction ends: committed, the row owns it;
rolled back, the request's rollback hook removes it. Work in other processes (job processes, other
replicas) is covered by the sweep's age threshold instead.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_HELD = "fairaudit_live_work"
_lock = threading.Lock()
_live: Counter[Path] = Counter()


def hold_until_settled(session: Session, path: Path) -> None:
    """Mark ``path`` live until ``session``'s transaction ends (begun here if none is, without
    connecting, so the release cannot be skipped by a request that fails before its first query)."""
    if not session.in_transaction():
        session.begin()
    with _lock:
        _live[path] += 1
    session.info.setdefault(_HELD, []).append(path)


def live_paths() -> frozenset[Path]:
    with _lock:
        return frozenset(_live)


@event.listens_for(Session, "after_transaction_end")
def _settled(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    if transaction.parent is not None or _HELD not in session.info:
        return
    paths = session.info.pop(_HELD)
    with _lock:
        _live.subtract(paths)
        for path in paths:
            if _live[path] <= 0:
                del _live[path]
