"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app.core.auth_route import AuthenticatedRoute
from app.db.migrate import is_at_head
from app.observability.access import metrics_audience

router = APIRouter(tags=["health"], route_class=AuthenticatedRoute)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.read_engine  # never queues for SQLite's write lock
    checks: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "ok" if is_at_head(engine) else "not at head: run `fairaudit migrate`"
    except Exception as exc:  # readiness reports the failure instead of raising
        checks["database"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request, organisation_id: Annotated[str | None, Depends(metrics_audience)]) -> Response:
    """Prometheus metrics (``app.observability.metrics``). With the operator token
    (``FAIRAUDIT_METRICS_TOKEN``): every series; with an API key, whatever its role: its own
    organisation's jobs, job throughput and predictions only."""
    body = request.app.state.telemetry.exposition(organisation_id)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
