"""Alert tests drive rule evaluation and delivery themselves (with chosen clocks), so the server's
background loops are off unless a test turns them on."""

from __future__ import annotations

import pytest

from app.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "alert_evaluation_enabled": False,
            "webhook_delivery_enabled": False,
            "webhook_backoff_seconds": 10.0,
            "webhook_timeout_seconds": 5.0,
            "webhook_max_response_bytes": 64,
        }
    )
