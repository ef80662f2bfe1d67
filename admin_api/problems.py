"""Every error as problem+json (RFC 9457), from one place.

Domain errors map by type: Forbidden 403; NotFound 404; IllegalTransition, Conflict, Refused,
CapacityExceeded and AgentUnavailable 409; InvalidInput 422. Logs carry the error code and
path only: a detail can quote personal data (a name, an email address), so it goes to the
caller, never to logs.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.db.database import IntegrityError
from core.errors import (
    AgentUnavailable,
    CapacityExceeded,
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    Refused,
)

log = logging.getLogger("careline.admin_api")

PROBLEM_JSON = "application/problem+json"

DOMAIN_STATUS: dict[type[DomainError], int] = {
    NotFound: 404,
    IllegalTransition: 409,
    Conflict: 409,
    CapacityExceeded: 409,
    AgentUnavailable: 409,
    Refused: 409,
    InvalidInput: 422,
    Forbidden: 403,
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details; `errors` lists field problems of a 422."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = None
    errors: list[dict[str, Any]] | None = None


class Problem(Exception):
    """Raise to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.code = code
        self.headers = headers or {}


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        type=f"urn:careline:problem:{code}" if code else "about:blank",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        code=code,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def domain_status(exc: DomainError) -> int:
    for cls in type(exc).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return 422


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    status = domain_status(exc)
    log.info("refused %s %s: %s", request.method, request.url.path, exc.code)
    return problem_response(request, status, str(exc), code=exc.code)


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc.status, exc.detail, code=exc.code, headers=exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path; list them all.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> set[str]:
    # From the OpenAPI paths (every path parameter here is an integer id): the routers
    # nest, and Starlette only names the methods of the first route that matched.
    methods: set[str] = set()
    for path, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\\{\w+\\\}", "[0-9]+", re.escape(path))
        if re.fullmatch(pattern, request.url.path.removeprefix(request.scope.get("root_path", ""))):
            methods |= {m.upper() for m in operations}
    return methods


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem_response(
        request, 422, "the request is not valid", code="invalid_request", errors=errors
    )


async def _on_integrity_error(request: Request, exc: Exception) -> JSONResponse:
    # A unique constraint lost a race or was broken (e.g. a Slack user id already in use).
    log.info("integrity error on %s %s", request.method, request.url.path)
    return problem_response(
        request, 409, "this conflicts with data that already exists", code="conflict"
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return problem_response(request, 500, "something went wrong on our side", code="internal")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(Exception, _on_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problems a route can answer with."""
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
        for status in statuses
    }
