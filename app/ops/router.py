"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text

from app.auth.deps import Authenticated
from app.auth.route import AuthenticatedRoute
from app.db.migrate import is_at_head
from app.jobs.models import Job

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


@router.get("/metrics", response_class=PlainTextResponse, summary="Job counts in the Prometheus text format")
def metrics(request: Request, principal: Authenticated) -> str:
    """The caller's organisation's job counts by kind and status, in the Prometheus text format.

    Any valid key may read them, whatever its role: a scraper should hold the least powerful key
    (``predictor``), and counts of one's own organisation's jobs reveal no patient data or results.
    """
    query = select(Job.kind, Job.status, func.count()).where(Job.organisation_id == principal.organisation_id)
    with request.app.state.read_engine.connect() as conn:  # never queues for SQLite's write lock
        rows = conn.execute(query.group_by(Job.kind, Job.status)).all()
    lines = ["# HELP fairaudit_jobs Jobs by kind and status.", "# TYPE fairaudit_jobs gauge"]
    lines += [f'fairaudit_jobs{{kind="{k}",status="{s}"}} {n}' for k, s, n in rows]
    return "\n".join(lines) + "\n"
