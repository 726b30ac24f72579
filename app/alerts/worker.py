"""The alert loops of a server process: judging due alert rules soon after predictions or outcomes
arrive (``Activity``), and at least every ``alert_poll_seconds`` (windows move with time), and
delivering due webhook events every ``webhook_poll_seconds``. Both keep their state in the
database (rules' last judgement, delivery rows), so a restart loses nothing and several replicas
share the work (rules and deliveries are locked while one process handles them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.alerts.service import evaluate_due
from app.alerts.webhooks import deliver_due
from app.serving.activity import Activity
from app.settings import Settings

log = logging.getLogger(__name__)
MIN_RULES_GAP_S = 0.25  # between two looks at the alert rules prompted by arriving data


class AlertWorker:
    def __init__(self, settings: Settings, factory: sessionmaker[Session], activity: Activity) -> None:
        self.settings, self.factory, self.activity = settings, factory, activity
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        loops: list[tuple[str, Callable[[], None]]] = []
        if self.settings.alert_evaluation_enabled:
            loops.append(("alert-rules", self._rules))
        if self.settings.webhook_delivery_enabled:
            loops.append(("webhooks", self._webhooks))
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.activity.touch()  # wake the rules loop
        for thread in self._threads:
            thread.join(timeout=self.settings.webhook_timeout_seconds + 5)

    def _rules(self) -> None:
        while not self._stop.is_set():
            self.activity.wait(self.settings.alert_poll_seconds)
            if self._stop.is_set():
                return
            self._guarded(lambda: evaluate_due(self.factory, self.settings))
            # Under steady prediction traffic every request touches the activity: without a pause the
            # rules would be read back to back, a core's worth of queries for a judgement that changes
            # no faster than the rules' own intervals. The arrivals meanwhile wake the next look.
            self._stop.wait(MIN_RULES_GAP_S)

    def _webhooks(self) -> None:
        while not self._stop.wait(self.settings.webhook_poll_seconds):
            self._guarded(lambda: deliver_due(self.factory, self.settings))

    @staticmethod
    def _guarded(step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # keep watching through transient database errors
            log.exception("alert loop step failed")
