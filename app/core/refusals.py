"""A per-address limit on refused anonymous calls (no key, or a key that is unknown or revoked).

Without it anyone who can reach the port fills the audit log: every refused state-changing call writes
a row. Past ``limit`` refusals in a fixed window an address is answered 429 with ``Retry-After`` until
the window ends, and only the first of those is logged (naming the limit) instead of one row per call.
Calls made with a valid key are never limited here.

State lives in the API process (one window per address, the least recently refused addresses
forgotten past ``max_clients``); several replicas each apply the limit on their own.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_CLIENTS = 10_000


@dataclass(frozen=True)
class Refusal:
    """The outcome of counting one refusal."""

    retry_after: int | None  # None: within the limit (answer 401); else whole seconds left in the window (429)
    first_over: bool = False  # the first refusal past the limit in its window: the one that is logged

    @property
    def limited(self) -> bool:
        return self.retry_after is not None


class RefusalLimiter:
    """Fixed windows per client address. Used from the event loop only (no lock)."""

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        max_clients: int = MAX_TRACKED_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window, self.max_clients, self.clock = limit, window_seconds, max_clients, clock
        self._windows: OrderedDict[str, list[float]] = OrderedDict()  # address -> [window start, refusals]

    def refuse(self, client: str) -> Refusal:
        now = self.clock()
        window = self._windows.get(client)
        if window is None or now - window[0] >= self.window:
            window = self._windows[client] = [now, 0]
            if len(self._windows) > self.max_clients:
                self._windows.popitem(last=False)
        self._windows.move_to_end(client)
        window[1] += 1
        if window[1] <= self.limit:
            return Refusal(None)
        return Refusal(max(1, math.ceil(window[0] + self.window - now)), first_over=window[1] == self.limit + 1)
