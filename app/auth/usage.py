"""When each API key was last used (``ApiKey.last_used_at``, listed by ``GET /v1/keys``), so that an
administrator can find keys nobody uses any more and revoke them.

Every authenticated request would otherwise write to the database, prediction included, and on
SQLite every write queues for the single write lock. So the time is recorded to the minute: each
server process writes a key's use at most once per ``RESOLUTION_S``, through the group-commit
writer (``app.db.group_commit``) and without waiting for it. A request pays a dictionary lookup; a
lost update (the database busy, the server stopping) only leaves the time a little older.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from app.auth.models import ApiKey
from app.db.base import utcnow
from app.db.group_commit import GroupCommitWriter

log = logging.getLogger(__name__)
RESOLUTION_S = 60.0


class KeyUsage:
    """Records keys' last use, at most once per ``resolution_s`` per key in this process."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        resolution_s: float = RESOLUTION_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer, self.resolution_s, self.clock = writer, resolution_s, clock
        self._written: dict[str, float] = {}  # key id → when its use was last submitted (one entry per valid key)
        self._lock = threading.Lock()

    def used(self, key_id: str) -> Future[None] | None:
        """Note a use of ``key_id``; the write it queued, or None when one was queued less than
        ``resolution_s`` ago (or the writer is closed: the server is stopping)."""
        now = self.clock()
        with self._lock:
            last = self._written.get(key_id)
            if last is not None and now - last < self.resolution_s:
                return None
            self._written[key_id] = now
        try:
            written = self.writer.submit_update(ApiKey, "id", [{"id": key_id, "last_used_at": utcnow()}])
        except RuntimeError:  # the writer is closed
            return None
        written.add_done_callback(_log_failure)
        return written


def _log_failure(written: Future[None]) -> None:
    error = written.exception()
    if error is not None:
        log.warning("could not record an API key's last use: %r", error)
