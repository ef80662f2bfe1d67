"""The admin API application: routers, problem handlers, body limit, OpenAPI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin_api.headers import SecurityHeaders
from admin_api.problems import PROBLEM_JSON, Problem, ProblemDetails, install_problem_handlers
from admin_api.ratelimit import ApiLimits
from admin_api.routes import (
    access,
    agents,
    customers,
    dead_letters,
    intents,
    knowledge,
    reports,
    tickets,
)
from core.config import Settings
from core.db.database import Database
from core.db.ratelimit import rate_limiter_for
from core.files import FileLinks
from core.policy import SlaPolicy
from core.ports import RateLimiter

DEFAULT_MAX_BODY_BYTES = 256 * 1024  # a 20,000-character reply in any script fits


def create_admin_app(
    db: Database,
    settings: Settings,
    file_links: Callable[[], FileLinks | None] = lambda: None,
    *,
    limiter: RateLimiter | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The admin API as a sub-application; the server mounts it at /api/v1.

    Its OpenAPI document is at `{mount}/openapi.json` and its docs at `{mount}/docs` (Swagger
    UI) and `{mount}/redoc`, with their scripts and styles served from `{mount}/docs-assets`
    (fastapi-offline ships them): the docs work with no internet.
    """
    from admin_api import __doc__ as description

    app = FastAPIOffline(
        title="Careline admin API",
        version="1",
        description=description or "",
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        static_url="/docs-assets",
    )
    app.state.db = db
    app.state.file_links = file_links  # the server's, once its secret is loaded
    app.state.settings = settings
    app.state.sla = SlaPolicy.from_hours(settings.sla_hours)
    app.state.limiter = limiter or rate_limiter_for(db)
    app.state.limits = ApiLimits.from_settings(settings)
    install_problem_handlers(app)
    app.router.dependencies.append(Depends(reject_unknown_query))
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(SecurityHeaders)
    for module in (access, agents, tickets, customers, dead_letters, reports, knowledge, intents):
        app.include_router(module.router)
    app.include_router(tickets.settings_router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_known_query: dict[int, frozenset[str]] = {}


async def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take: `?statuss=open` must not quietly
    list every ticket."""
    route = request.scope.get("route")
    if not request.query_params or not isinstance(route, APIRoute):
        return
    known = _known_query.get(id(route))
    if known is None:
        known = _known_query[id(route)] = frozenset(_query_names(route.dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise Problem(
            422,
            "unknown query parameters: " + ", ".join(repr(u[:40]) for u in unknown[:5]),
            code="unknown_parameter",
        )


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _with_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Document the problem+json answers every operation can give, in place of FastAPI's
    default 422 shape."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetails"] = ProblemDetails.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    ref = {"$ref": "#/components/schemas/ProblemDetails"}
    for operations in schema.get("paths", {}).values():
        for method, op in operations.items():
            statuses = [401, 403, 404, 422, 429, 500]
            if method in ("post", "put", "patch", "delete"):
                statuses.append(409)
            if "requestBody" in op:
                statuses += [400, 413]
            responses = op.setdefault("responses", {})
            for status in sorted(statuses):
                responses[str(status)] = {
                    "description": _PHRASES[status],
                    "content": {PROBLEM_JSON: {"schema": ref}},
                }
            responses["429"]["headers"] = {"Retry-After": _RETRY_AFTER}
    return schema


_RETRY_AFTER = {
    "description": "Seconds until the limit's window ends",
    "schema": {"type": "integer", "minimum": 1},
    "required": True,
}


_PHRASES = {
    400: "The body is not JSON",
    401: "No valid API key",
    403: "The key's role may not do this",
    404: "Not found",
    409: "Refused in the current state",
    413: "Request body too large",
    422: "Invalid request",
    429: "Too many requests from this key, or invalid keys from this address (Retry-After)",
    500: "Server error",
}


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _send_413(scope, send, self.max_bytes)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read; the problem handler answers 413.
                    raise StarletteHTTPException(413, _too_large(self.max_bytes))
            return message

        await self.app(scope, limited, send)


def _too_large(max_bytes: int) -> str:
    return f"the request body is larger than {max_bytes} bytes"


async def _send_413(scope: Scope, send: Send, max_bytes: int) -> None:
    body = ProblemDetails(
        title="Content Too Large",
        status=413,
        detail=_too_large(max_bytes),
        instance=scope.get("path"),
    ).model_dump_json(exclude_none=True)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
