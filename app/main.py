"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.auth.router import router as keys_router
from app.cohorts.router import router as cohorts_router
from app.core.audit import AuditMiddleware
from app.core.body_limit import BodySizeLimitMiddleware
from app.core.health import router as health_router
from app.core.problems import install_problem_handlers
from app.db.engine import make_engine, make_session_factory
from app.jobs.router import router as jobs_router
from app.jobs.supervisor import Supervisor
from app.serving.router import router as serving_router
from app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, run_supervisor: bool | None = None) -> FastAPI:
    """Build the app. The supervisor runs in-process unless Ray is configured or it is switched off
    (tests drive jobs explicitly; scale-out replicas may leave job execution to Ray)."""
    settings = settings or get_settings()
    problems = settings.check_production()
    if problems:
        raise RuntimeError("refusing to start with unsafe production settings: " + "; ".join(problems))
    engine = make_engine(settings.database_url)
    session_factory = make_session_factory(engine)
    if run_supervisor is None:
        run_supervisor = settings.supervisor_enabled and settings.ray_address is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        supervisor = Supervisor(settings, session_factory) if run_supervisor else None
        if supervisor is not None:
            supervisor.start()
        app.state.supervisor = supervisor
        try:
            yield
        finally:
            if supervisor is not None:
                supervisor.stop()
            engine.dispose()

    app = FastAPI(
        title="FairAudit",
        version="0.1.0",
        summary="Clinical fairness audits: subgroup metrics with honest uncertainty, early-exit serving.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    install_problem_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        default_limit=settings.max_request_bytes,
        upload_limit=settings.max_upload_bytes,
        upload_paths=("/v1/cohorts",),
    )
    app.add_middleware(AuditMiddleware)  # outermost: rejected uploads are audited too
    for router in (health_router, keys_router, cohorts_router, jobs_router, serving_router):
        app.include_router(router)
    return app
