"""A short-lived, per-process memory of valid API keys' checks.

Every keyed request otherwise reads its key's row: a threadpool hop and a database round trip that,
on the prediction path, cost as much as the rest of the request's bookkeeping. A valid key's
principal is reused for at most ``ttl`` seconds (``FAIRAUDIT_KEY_CACHE_SECONDS``, at most 1), so a
revocation or a role change takes effect in every server process within that time without any
cross-process signal. Refused keys are never remembered: a key created a moment ago works at once,
and garbage tokens cannot fill the memory. Entries are keyed by the SHA-256 of the presented text,
never the text itself.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from app.auth.service import Principal

MAX_ENTRIES = 4096


class KeyCache:
    """Presented key → (principal, expiry), for valid keys only; bounded by ``max_entries``."""

    def __init__(self, ttl: float, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Principal | None:
        """The principal checked for ``token`` less than ``ttl`` seconds ago, else None."""
        if self.ttl <= 0:
            return None
        entry = self._entries.get(self._key(token))
        if entry is None or entry[1] <= self.clock():
            return None
        return entry[0]

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl <= 0:
            return
        now = self.clock()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                live = {k: v for k, v in self._entries.items() if v[1] > now}
                self._entries = live if len(live) < self.max_entries else {}
            self._entries[self._key(token)] = (principal, now + self.ttl)

    def forget(self, key_id: str) -> None:
        """Drop ``key_id``'s checks now (this process revoked it); other processes wait out ``ttl``."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if v[0].key_id != key_id}
