"""The console application: templates, the signed-in person, forms and error pages.

Pages are rendered on the server (Jinja2); console.js only enhances them (live updates, a
saved reply into the answer, who else is on a ticket), so every action also works as a
plain form. Everything is served from here: no page loads anything from another site.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin_api.console.security import (
    SESSION_COOKIE,
    InvitationLinks,
    check_origin,
    check_token,
    token_hash,
)
from admin_api.deps import AdminUnitOfWork, get_uow
from admin_api.headers import SecurityHeaders, page_policy
from admin_api.problems import domain_status
from core.access import Caller, Role
from core.config import Settings
from core.db import staff
from core.db.database import Database, IntegrityError, Session
from core.db.ratelimit import rate_limiter_for
from core.db.staff import SignedIn
from core.errors import DomainError
from core.files import FileLinks
from core.model import utcnow
from core.policy import SlaPolicy
from core.ports import RateLimit, RateLimiter

log = logging.getLogger("careline.console")

HERE = Path(__file__).parent
TOUCH_EVERY = timedelta(minutes=1)  # write a session's last use at most this often


@dataclass(frozen=True, slots=True)
class ConsoleLimits:
    sign_in_address: RateLimit  # sign-in attempts per client address
    sign_in_account: RateLimit  # sign-in attempts per account (email)

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleLimits:
        n = settings.console_sign_ins_per_quarter_hour
        return cls(
            RateLimit("console.sign_in.address", n, 900),
            RateLimit("console.sign_in.account", n, 900),
        )


class SignInRequired(Exception):
    """No live session: off to the sign-in page, and back afterwards."""


class Templates:
    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html.j2"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["duration"] = duration

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        signed: SignedIn | None = getattr(request.state, "signed", None)
        html = self.env.get_template(name).render(
            {
                "base": request.scope.get("root_path", ""),
                "me": signed.account if signed else None,
                "csrf": signed.csrf if signed else "",
                "path": request.url.path,
                **context,
            }
        )
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def duration(seconds: float | None) -> str:
    """A mean time as people say it: 45 s, 12 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def create_console_app(
    db: Database,
    settings: Settings,
    secret: Callable[[], str | None],
    file_links: Callable[[], FileLinks | None] = lambda: None,
    *,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    """The console as a sub-application; the server mounts it at /console. `secret` is the
    server's secret once loaded (invitation links)."""
    from admin_api.console import admin_pages, live, people, work

    app = FastAPI(title="Careline console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.db = db
    app.state.settings = settings
    app.state.sla = SlaPolicy.from_hours(settings.sla_hours)
    app.state.secret = secret
    app.state.file_links = file_links
    app.state.limiter = limiter or rate_limiter_for(db)
    app.state.limits = ConsoleLimits.from_settings(settings)
    app.state.templates = Templates()
    app.add_middleware(SecurityHeaders, page_policy=page_policy(inline=False))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (people, work, live, admin_pages):
        app.include_router(module.router)
    _install_error_pages(app)
    return app


def templates(request: Request) -> Templates:
    found: Templates = request.app.state.templates
    return found


def invitation_links(request: Request) -> InvitationLinks:
    secret = request.app.state.secret()
    if secret is None:
        raise DomainError("the server is starting; try again in a moment")
    return InvitationLinks(secret)


# --- the signed-in person -----------------------------------------------------------------


async def find_signed_in(request: Request, session: Session) -> SignedIn:
    """The request's live session, or SignInRequired; its last use is kept to the minute."""
    token = request.cookies.get(SESSION_COOKIE)
    settings: Settings = request.app.state.settings
    idle = timedelta(hours=settings.console_session_idle_hours)
    found = await staff.signed_in(session, token_hash(token), idle) if token else None
    if found is None:
        raise SignInRequired()
    if found.last_seen_at < utcnow() - TOUCH_EVERY:
        await staff.touch(session, found.session_id)
        await session.commit()
    request.state.signed = found
    return found


async def signed_in(
    request: Request, uow: Annotated[AdminUnitOfWork, Depends(get_uow)]
) -> SignedIn:
    return await find_signed_in(request, uow.session)


Me = Annotated[SignedIn, Depends(signed_in)]
Uow = Annotated[AdminUnitOfWork, Depends(get_uow)]


def caller_of(signed: SignedIn) -> Caller:
    account = signed.account
    role: Role = "admin" if account.role == "admin" else "agent"
    return Caller(name=account.name, role=role, agent_id=account.agent_id, staff_id=account.id)


async def form_of(request: Request, signed: SignedIn) -> dict[str, str]:
    """A signed-in form's fields, once its origin and CSRF token are checked."""
    check_origin(request)
    form = await request.form()
    check_token(signed.csrf, form.get("csrf"))
    return {key: value for key, value in form.items() if isinstance(value, str)}


def back_to(request: Request, path: str, done: str | None = None) -> RedirectResponse:
    """Post/redirect/get: 303 to a console page, saying what was done."""
    base = request.scope.get("root_path", "")
    target = f"{base}{path}"
    if done:
        target += ("&" if "?" in target else "?") + f"done={quote(done)}"
    return RedirectResponse(target, status_code=303)


# --- errors as pages ----------------------------------------------------------------------


def _install_error_pages(app: FastAPI) -> None:
    async def sign_in_first(request: Request, exc: Exception) -> Response:
        base = request.scope.get("root_path", "")
        wanted = request.url.path if request.method == "GET" else f"{base}/"
        return RedirectResponse(f"{base}/sign-in?next={quote(wanted)}", status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        status = domain_status(exc) if type(exc) is not DomainError else 503
        log.info("console refused %s %s: %s", request.method, _route(request), exc.code)
        return _error_page(request, status, str(exc))

    async def not_valid(request: Request, exc: Exception) -> Response:
        return _error_page(request, 422, "this request is not valid")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = "there is no such page" if exc.status_code == 404 else str(exc.detail)
        return _error_page(request, exc.status_code, detail)

    async def clash(request: Request, exc: Exception) -> Response:
        # A unique value taken (a saved reply's title, a race to the same email). The error's
        # text quotes the values, which may be personal: only the route goes to the log.
        log.info("console conflict %s %s", request.method, _route(request))
        return _error_page(request, 409, "this conflicts with something that already exists")

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("console: unexpected %s on %s %s", type(exc).__name__, request.method,
                  _route(request))  # fmt: skip
        return _error_page(request, 500, "something went wrong on our side")

    app.add_exception_handler(SignInRequired, sign_in_first)
    app.add_exception_handler(IntegrityError, clash)
    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(DomainError, refused)
    app.add_exception_handler(RequestValidationError, not_valid)
    app.add_exception_handler(StarletteHTTPException, http_error)


def _route(request: Request) -> str:
    """The route's template for the log, never the path: an invitation's path holds its
    secret."""
    return str(getattr(request.scope.get("route"), "path", "?"))


def _error_page(request: Request, status: int, detail: str) -> Response:
    return templates(request).page(
        request, "error.html.j2", {"status": status, "detail": detail}, status=status
    )
