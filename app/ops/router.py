"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.auth.route import AuthenticatedRoute
from app.core.openapi import problem_responses
from app.db.migrate import is_at_head
from app.ops.metrics_access import metrics_audience

router = APIRouter(tags=["health"], route_class=AuthenticatedRoute)


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(description='per check ("database", "migrations"): "ok" or what is wrong')


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database is reachable and migrated",
    responses={503: {"model": Readiness, "description": "not ready: the checks say why"}},
)
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


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics: the operator's view, or the calling organisation's",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problem_responses(401, 429)},
)
def metrics(request: Request, organisation_id: Annotated[str | None, Depends(metrics_audience)]) -> Response:
    """Prometheus metrics (``app.observability.metrics``). With the operator token
    (``FAIRAUDIT_METRICS_TOKEN``): every series; with an API key, whatever its role: its own
    organisation's jobs, job throughput and predictions only."""
    body = request.app.state.telemetry.exposition(organisation_id)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
