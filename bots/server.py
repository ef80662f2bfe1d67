"""Composition root: settings, database and clients are built here once, at start-up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from core.config import Settings
from core.db.database import Database
from core.db.migrate import is_current, migrate

log = logging.getLogger("careline.server")


@dataclass
class Runtime:
    """Everything built at start-up, handed to the routes and the relay."""

    settings: Settings
    db: Database


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url, pool_size=settings.db_pool_size)
        if settings.auto_migrate:
            await migrate(db)
        app.state.runtime = Runtime(settings=settings, db=db)
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(title="Careline", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        runtime: Runtime = app.state.runtime
        try:
            await runtime.db.ping()
            current = await is_current(runtime.db)
        except Exception as exc:  # any database failure means "not ready"
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app


def run(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
