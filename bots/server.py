"""Composition root: settings, database and clients are built here once, at start-up.

`create_app(settings)` is the one ASGI app of `careline serve`. What it runs depends on
`settings.role`: `all` (the default: web and the outbox relay in one process), `web`
(webhooks, pages, admin API and console) or `relay` (only the relay; the web part then
serves just /healthz, /readyz and /metrics for the orchestrator).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from admin_api.console.invitations import CONSOLE_PATH, first_admin_link
from admin_api.headers import SecurityHeaders
from bots.channels import ChannelPlug, PlugBuild, PlugStart, TurnEngine
from bots.files import ObjectEraser, files_router
from bots.logging import RequestIdMiddleware, configure_logging
from bots.metrics import CONTENT_TYPE, Metrics
from bots.plugs import PLUGS
from core.config import Settings
from core.db.database import Database, url_facts
from core.db.files import SqlFileStore, file_store_for
from core.db.flags import load_or_create_secret
from core.db.keys import ensure_bootstrap_admin_key
from core.db.migrate import is_current, migrate
from core.db.outbox import SqliteRelayLock
from core.files import FileLinks

if TYPE_CHECKING:
    from bots.housekeeping import Housekeeping

log = logging.getLogger("careline.server")

ADMIN_API_PATH = "/api/v1"

RelayRunner = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class Runtime:
    """Everything built at start-up, handed to the routes and the relay."""

    settings: Settings
    db: Database
    metrics: Metrics
    files: SqlFileStore  # attachments' bytes
    engine: TurnEngine | None = None  # the dialog engine (web roles)
    admin_key: str | None = None  # the bootstrap admin key, when this start created it
    housekeeping: Housekeeping | None = None  # relay roles
    plugs: list[ChannelPlug] = field(default_factory=list)  # channels packaged as plugs
    file_links: FileLinks | None = None  # once the secret is loaded
    secret: str | None = None  # the server's secret, once loaded
    first_admin_link: str | None = None  # while no console admin exists (printed at start)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def settle_heap() -> None:
    """Leave what start-up made (modules, models, templates) out of every later garbage
    collection: a full collection then walks only what requests make, and its pauses stop
    showing in page times (bench/admin_bench.py saw 100 ms ones without this).

    Only the young generations are collected first: by then the automatic collections have
    left no garbage in the old one (a full collection found none and took about 0.1 s)."""
    gc.collect(1)
    gc.freeze()


class BuiltOnFirstUse:
    """An ASGI app built for its first request, in a worker thread.

    The admin API and the console are a large part of what `careline serve` would import
    and build at start (their schemas, routes and templates: about 0.3 s). Staff open them
    long after start-up; building them then lets webhooks and the web chat be served
    sooner. The first request waits for the build, and the event loop serves others
    meanwhile. (Building them in the background right after start slowed readiness: the
    build and the start-up's first requests took turns on one interpreter.)
    """

    def __init__(self, make: Callable[[], ASGIApp]) -> None:
        self._make = make
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()

    async def build(self) -> ASGIApp:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    self._app = await asyncio.to_thread(self._make)
                    settle_heap()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app if self._app is not None else await self.build()
        await app(scope, receive, send)


def serves_web(settings: Settings) -> bool:
    return settings.role in ("all", "web")


def runs_relay(settings: Settings) -> bool:
    return settings.role in ("all", "relay")


def build_engine(settings: Settings, db: Database) -> Any:
    """The dialog engine (trains or loads the local NLU once, at start-up)."""
    from dialogs.factory import build_engine as build_dialog_engine

    return build_dialog_engine(settings, db)


HandlersFactory = Callable[[Runtime], Any]
"""Registers the relay's handlers (`bots.relay.Handlers`) for this process's runtime."""


def default_relay_handlers(runtime: Runtime) -> Any:
    """Every area's relay handlers: customer notices in chat and by email, each plug's own."""
    from bots.notices import CustomerNotices
    from bots.notices.staff import StaffNotices
    from bots.relay import Handlers

    handlers = Handlers()
    chats = [plug.channel for plug in runtime.plugs if plug.channel is not None]
    mail = next(plug.mail for plug in runtime.plugs if plug.mail is not None)
    CustomerNotices(
        runtime.db,
        channels={chat.channel: chat for chat in chats},
        email=mail.sender,
        reopen_days=runtime.settings.reopen_window_days,
        reply_to=mail.reply_to,
        files=runtime.files,
        links=lambda: runtime.file_links,
        chat_link_days=runtime.settings.chat_file_link_days,
    ).register(handlers)
    StaffNotices(
        runtime.db, mail.sender, lambda: runtime.secret, public_base(runtime.settings)
    ).register(handlers)
    for plug in runtime.plugs:
        plug.register(handlers)
    if runtime.files.blobs is not None:
        ObjectEraser(runtime.files.blobs).register(handlers)
    if runtime.housekeeping is not None:
        runtime.housekeeping.register(handlers)
    return handlers


def build_relay(runtime: Runtime, handlers_factory: HandlersFactory) -> RelayRunner | None:
    """The outbox relay as `run(stopping)`, or None when no handlers are registered."""
    handlers = handlers_factory(runtime)
    if handlers is None:
        log.warning("no relay handlers registered: the outbox is not relayed by this process")
        return None
    from bots.relay import Relay

    relay = Relay.from_settings(
        runtime.db,
        handlers,
        runtime.settings,
        grace_seconds=runtime.settings.shutdown_grace_seconds,
    )
    return relay.run


def create_app(
    settings: Settings,
    *,
    engine: Any = None,
    relay_handlers: HandlersFactory = default_relay_handlers,
) -> FastAPI:
    """The Careline ASGI app. `engine` overrides the dialog engine (tests, benchmarks).

    Clients are built here without any I/O; the lifespan migrates, connects and starts them.
    """
    metrics = Metrics()
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        sqlite_durable=settings.sqlite_durable_commits,
    )
    runtime = Runtime(settings=settings, db=db, metrics=metrics, files=file_store_for(settings, db))
    web = serves_web(settings)
    made = PlugBuild(settings, db, metrics, runtime.files, lambda: runtime.file_links)
    runtime.plugs = [spec.build(made) for spec in PLUGS if spec.enabled(settings)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = runtime
        sqlite_lock = _claim_sqlite(settings, db)
        try:
            if settings.auto_migrate:
                await migrate(db)
            if runtime.files.blobs is not None:
                await runtime.files.blobs.check()
            secret = runtime.secret = await _secret(runtime)  # read once: links, plugs, console
            runtime.file_links = FileLinks(
                secret, settings.public_url, settings.file_link_minutes * 60
            )
            if web:
                runtime.engine = (
                    engine
                    if engine is not None
                    else await asyncio.to_thread(build_engine, settings, db)
                )
                await _start_knowledge(runtime)
                runtime.admin_key = await ensure_bootstrap_admin_key(db)
                if runtime.admin_key:
                    print(_admin_key_notice(settings, runtime.admin_key), flush=True)
                link = await first_admin_link(db, secret, public_base(settings))
                runtime.first_admin_link = link
                if link:
                    print(_first_admin_notice(link), flush=True)
            started = PlugStart(runtime.engine, settings.public_url, web, runtime.stopping, secret)
            for plug in runtime.plugs:
                runtime.background.extend(await plug.start(started))
            if runs_relay(settings):
                from bots.housekeeping import Housekeeping

                runtime.housekeeping = Housekeeping(db, settings)
                runtime.background.append(
                    asyncio.create_task(
                        runtime.housekeeping.run(runtime.stopping), name="housekeeping"
                    )
                )
                runner = build_relay(runtime, relay_handlers)
                if runner is not None:
                    runtime.background.append(
                        asyncio.create_task(runner(runtime.stopping), name="outbox-relay")
                    )
            settle_heap()
            yield
        finally:
            await _stop(runtime)
            if sqlite_lock is not None:
                sqlite_lock.release()

    app = FastAPI(title="Careline", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await db.ping()
            current = await is_current(db)
        except Exception as exc:  # any database failure means "not ready"
            log.warning("readiness check failed: %s", type(exc).__name__)
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        if not current:
            return JSONResponse({"status": "migrations pending"}, status_code=503)
        if web and runtime.engine is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    if web:
        admin, console = _staff_apps(runtime)
        app.mount(ADMIN_API_PATH, admin)
        app.mount(CONSOLE_PATH, console)
        app.include_router(files_router(runtime.files, lambda: runtime.file_links))
        for plug in runtime.plugs:
            for router in plug.routes():
                app.include_router(router)

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/chat")

        @app.get("/docs", include_in_schema=False)
        async def docs() -> RedirectResponse:
            return RedirectResponse(f"{ADMIN_API_PATH}/docs")

        @app.get("/redoc", include_in_schema=False)
        async def redoc() -> RedirectResponse:
            return RedirectResponse(f"{ADMIN_API_PATH}/redoc")

    return app


def _staff_apps(runtime: Runtime) -> tuple[BuiltOnFirstUse, BuiltOnFirstUse]:
    """The admin API and the console, each built on first use."""
    settings, db = runtime.settings, runtime.db

    def build_admin_api() -> ASGIApp:
        from admin_api.app import create_admin_app

        return create_admin_app(db, settings, lambda: runtime.file_links)

    def build_console() -> ASGIApp:
        from admin_api.console.app import create_console_app

        return create_console_app(db, settings, lambda: runtime.secret, lambda: runtime.file_links)

    return BuiltOnFirstUse(build_admin_api), BuiltOnFirstUse(build_console)


def _claim_sqlite(settings: Settings, db: Database) -> SqliteRelayLock | None:
    """SQLite serves one process: refuse split roles and a second server on the same file."""
    if not db.is_sqlite:
        return None
    if settings.role != "all":
        raise RuntimeError(
            f"role {settings.role!r} needs PostgreSQL: on SQLite one process runs web and "
            "relay together (role all). Set CARELINE_DATABASE_URL to a PostgreSQL URL."
        )
    path = db.sqlite_path
    if path is None:
        return None
    lock = SqliteRelayLock(path, what="server")
    lock.acquire()  # raises with a clear message when another server holds the file
    return lock


async def _secret(runtime: Runtime) -> str:
    """The server's secret (settings, else generated once and kept in the database)."""
    secret = runtime.settings.secret_key
    return await load_or_create_secret(
        runtime.db, secret.get_secret_value() if secret is not None else None
    )


async def _start_knowledge(runtime: Runtime) -> None:
    """Seed and load the knowledge base and the model of the edited intent examples, then
    follow both (admins publish and teach live)."""
    for part, task in (("knowledge", "knowledge-refresh"), ("intents", "intents-refresh")):
        live = getattr(runtime.engine, part, None)
        if live is None:
            continue
        await live.start()
        runtime.background.append(asyncio.create_task(live.follow(runtime.stopping), name=task))


def public_base(settings: Settings) -> str:
    """Where people reach this server: the public URL, else the address it listens on."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def _first_admin_notice(link: str) -> str:
    return (
        "\n  No console admin yet. Open this link to become the first admin; until someone"
        f"\n  does, every start shows a working link:\n    {link}\n"
    )


def _admin_key_notice(settings: Settings, key: str) -> str:
    base = f"http://{settings.host}:{settings.port}"
    return (
        f"\n  First start: an admin API key was created. It is shown only this once:\n"
        f"    {key}\n"
        f"  Try it:  curl -H 'Authorization: Bearer {key}' {base}{ADMIN_API_PATH}/tickets\n"
        f"  API docs: {base}{ADMIN_API_PATH}/docs    Console: {base}{CONSOLE_PATH}\n"
    )


async def _stop(runtime: Runtime) -> None:
    """Stop background work within the grace period, then close clients and the database."""
    runtime.stopping.set()
    grace = runtime.settings.shutdown_grace_seconds
    if runtime.background:
        _, pending = await asyncio.wait(runtime.background, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for plug in runtime.plugs:
        with contextlib.suppress(Exception):
            await plug.stop(grace)
    await runtime.db.dispose()


def banner(settings: Settings) -> str:
    """What `careline serve` runs and where, printed on start."""
    base = f"http://{settings.host}:{settings.port}"
    public = (settings.public_url or base).rstrip("/")
    db_url = url_facts(settings.database_url).shown
    lines = [f"Careline — role {settings.role}", f"  listening   {base}"]
    migrated = " (migrated on start)" if settings.auto_migrate else ""
    lines.append(f"  database    {db_url}{migrated}")
    lines.append(f"  health      {base}/healthz  {base}/readyz  {base}/metrics")
    if serves_web(settings):
        for spec in PLUGS:
            first, *more = spec.banner(settings, public)
            lines.append(f"  {spec.name:<11} {first}")
            lines += [f"  {'':<11} {line}" for line in more]
        lines.append(f"  console     {public}{CONSOLE_PATH}")
        lines.append(f"  admin API   {base}{ADMIN_API_PATH}")
    else:
        lines.append("  web         off (role relay): no webhooks, no admin API")
    relay = "in this process" if runs_relay(settings) else "off (role web: run a relay role)"
    lines.append(f"  relay       {relay}")
    files = (
        f"S3 bucket {settings.s3_bucket} ({settings.s3_prefix})"
        if settings.file_store == "s3"
        else "in the database"
    )
    lines.append(f"  files       {files}")
    return "\n".join(lines)


def run(settings: Settings) -> None:
    """`careline serve`: uvicorn (uvloop, httptools); SIGTERM drains in-flight requests."""
    import uvicorn

    if url_facts(settings.database_url).backend == "sqlite" and settings.role != "all":
        raise SystemExit(
            f"careline: role {settings.role!r} needs PostgreSQL: on SQLite one process runs web "
            "and relay together (role all). Set CARELINE_DATABASE_URL to a PostgreSQL URL."
        )

    secrets = [settings.secret_key.get_secret_value()] if settings.secret_key else []
    for spec in PLUGS:
        values = (getattr(settings, name) for name in spec.secrets)
        secrets += [value.get_secret_value() for value in values if value is not None]
    password = url_facts(settings.database_url).password
    if password:
        secrets.append(password)
    configure_logging(settings.log_level, json_lines=settings.log_json, secrets_=secrets)
    print(banner(settings), flush=True)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level=None,  # configure_logging set every level; uvicorn's own would undo its floors
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        lifespan="on",
    )
    uvicorn.Server(config).run()
