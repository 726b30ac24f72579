"""Which served models just got predictions or outcomes: a signal for whoever watches live data
(alert evaluation, ``app.alerts.worker``) to look soon, without serving knowing who watches."""

from __future__ import annotations

import threading


class Activity:
    def __init__(self) -> None:
        self._event = threading.Event()

    def touch(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait until something arrives (True) or ``timeout`` passes (False); clears the signal."""
        arrived = self._event.wait(timeout)
        self._event.clear()
        return arrived
