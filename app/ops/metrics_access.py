"""Who may read ``/metrics``, and which view (``app.observability.metrics``) they get.

- The operator token, ``FAIRAUDIT_METRICS_TOKEN`` (unset: no one holds it), sent as
  ``Authorization: Bearer <token>``: every series, every organisation's, and the process-wide ones
  (request latency, the process's CPU and memory). A scraper run by whoever runs the service.
- Any valid API key, whatever its role: its own organisation's series only (its jobs, their
  throughput, its predictions), as before the operator token existed. A scraper should hold the least
  powerful key (``predictor``).

The token is compared in constant time (digests of equal length, ``hmac.compare_digest``). A wrong token
is then tried as an API key and refused as one: 401, and counted against the address's limit on refused
calls (``app.core.refusals``), so it cannot be guessed faster than a key.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from app.auth.deps import BearerCredentials
from app.auth.route import authorise
from app.settings import Settings


def is_operator(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    if settings.metrics_token is None:
        return False
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    expected = hashlib.sha256(settings.metrics_token.get_secret_value().encode()).digest()
    return hmac.compare_digest(hashlib.sha256(presented.strip().encode()).digest(), expected)


async def metrics_audience(request: Request, _: BearerCredentials) -> str | None:
    """Dependency: ``None`` for the operator (every series), else the calling key's organisation id.
    Reads only headers: ``/metrics`` has no body. ``BearerCredentials`` declares the bearer scheme in
    the OpenAPI document (the operator token and API keys are both bearer tokens); it refuses nothing."""
    if is_operator(request):
        return None
    principal = await authorise(request, frozenset())
    return principal.organisation_id
