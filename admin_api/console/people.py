"""People in the console: signing in and out, invitations, one's account, and the admins'
pages for agents, saved replies and the auto-assignment switch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from admin_api.console.app import (
    Me,
    Uow,
    back_to,
    caller_of,
    form_of,
    invitation_links,
    templates,
)
from admin_api.console.security import (
    FORM_COOKIE,
    WeakPassword,
    check_new_password,
    check_origin,
    check_token,
    clear_session_cookie,
    form_token,
    hash_password,
    is_https,
    keep_form_token,
    new_nonce,
    new_token,
    password_matches,
    set_session_cookie,
    token_hash,
)
from admin_api.ratelimit import client_address
from core import services
from core.access import require_admin
from core.config import Settings
from core.contact import normalise_email
from core.db import staff
from core.db.queries import AUTO_ASSIGN_FLAG, read_flag, write_flag
from core.errors import InvalidInput, NotFound
from core.events import StaffInvited
from core.model import Agent, Availability, utcnow

router = APIRouter(include_in_schema=False)

DONE = {
    "invited": "Invitation sent. It works for {days} days.",
    "saved": "Saved.",
    "deactivated": "Agent deactivated; they are signed out of the console.",
    "activated": "Agent active again.",
    "password": "Password changed. Every other session of yours is signed out.",
    "deleted": "Deleted.",
    "switched": "Automatic assignment switched.",
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# --- signing in and out -------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str = "") -> Response:
    return _sign_in_form(request, next=next)


def _sign_in_form(
    request: Request, *, next: str = "", email: str = "", error: str = "", status: int = 200
) -> Response:
    token = form_token(request)
    context = {"next": _safe_next(request, next), "email": email, "error": error,
               "form_token": token}  # fmt: skip
    page = templates(request).page(request, "sign_in.html.j2", context, status=status)
    keep_form_token(page, token, secure=is_https(request, _settings(request).public_url))
    return page


def _safe_next(request: Request, wanted: str) -> str:
    """Only a console path: never a redirect to another site."""
    base = request.scope.get("root_path", "")
    if wanted.startswith(f"{base}/") and not wanted.startswith("//") and "\\" not in wanted:
        return wanted
    return f"{base}/"


@router.post("/sign-in")
async def sign_in(request: Request, uow: Uow) -> Response:
    check_origin(request)
    form = await request.form()
    check_token(request.cookies.get(FORM_COOKIE), form.get("form_token"))
    email = str(form.get("email") or "").strip().lower()[:320]
    password = str(form.get("password") or "")
    next_ = str(form.get("next") or "")
    # Every attempt counts, before the password is checked: past the limit even the right
    # password waits, so guessing gains nothing, and no hash is computed for a flood.
    limits, limiter = request.app.state.limits, request.app.state.limiter
    waits = [
        await limiter.hit(limits.sign_in_address, client_address(request)),
        await limiter.hit(limits.sign_in_account, email or "-"),
    ]
    if wait := max(waits):
        minutes = max(1, round(wait / 60))
        response = _sign_in_form(
            request, next=next_, email=email, status=429,
            error=f"Too many sign-in attempts. Try again in {minutes} min.",
        )  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    account = await staff.account_by_email(uow.session, email) if email else None
    matches = await password_matches(account.password_hash if account else None, password)
    if not (matches and account is not None and account.active):
        return _sign_in_form(
            request, next=next_, email=email, status=401,
            error="That email and password do not match an active account.",
        )  # fmt: skip
    await uow.rollback()
    return await _start_session(request, uow, account.id, _safe_next(request, next_))


async def _start_session(request: Request, uow: Uow, staff_id: int, target: str) -> Response:
    """A new session (never one from before sign-in) and its cookie."""
    settings = _settings(request)
    token = new_token()
    ttl = timedelta(days=settings.console_session_days)
    await staff.open_session(uow.session, staff_id, token_hash(token), new_token(), ttl)
    await uow.commit()
    response = RedirectResponse(target, status_code=303)
    secure = is_https(request, settings.public_url)
    set_session_cookie(response, token, max_age=int(ttl.total_seconds()), secure=secure)
    response.delete_cookie(FORM_COOKIE, path="/console")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    await staff.end_session(uow.session, me.session_id)
    await uow.commit()
    return _signed_out(request)


@router.post("/sign-out-everywhere")
async def sign_out_everywhere(request: Request, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    await staff.end_sessions(uow.session, me.account.id)
    await uow.commit()
    return _signed_out(request)


def _signed_out(request: Request) -> Response:
    base = request.scope.get("root_path", "")
    response = RedirectResponse(f"{base}/sign-in", status_code=303)
    clear_session_cookie(response, secure=is_https(request, _settings(request).public_url))
    return response


# --- invitations ----------------------------------------------------------------------------


async def _invitation(request: Request, uow: Uow, token: str) -> staff.Invitation:
    links = invitation_links(request)
    parsed = links.parse(token)
    found = await staff.invitation(uow.session, parsed[0]) if parsed else None
    if found is None or parsed is None or not links.matches(found.id, found.nonce, parsed[1]):
        raise NotFound("this invitation link is not valid")
    if found.used_at is not None:
        raise NotFound("this invitation was already used; sign in instead")
    if found.expires_at <= utcnow():
        raise NotFound("this invitation has expired; ask an admin for a new one")
    return found


@router.get("/invitations/{token}", response_class=HTMLResponse)
async def invitation_page(request: Request, token: str, uow: Uow) -> Response:
    found = await _invitation(request, uow, token)
    return _accept_form(request, found, token, name=found.name, email=found.email or "")


def _accept_form(
    request: Request, found: staff.Invitation, token: str, *, name: str, email: str,
    error: str = "", status: int = 200,
) -> Response:  # fmt: skip
    value = form_token(request)
    context: dict[str, Any] = {
        "invitation": found, "token": token, "name": name, "email": email, "error": error,
        "form_token": value,
    }  # fmt: skip
    page = templates(request).page(request, "accept.html.j2", context, status=status)
    keep_form_token(page, value, secure=is_https(request, _settings(request).public_url))
    return page


@router.post("/invitations/{token}")
async def accept_invitation(request: Request, token: str, uow: Uow) -> Response:
    check_origin(request)
    form = await request.form()
    check_token(request.cookies.get(FORM_COOKIE), form.get("form_token"))
    found = await _invitation(request, uow, token)
    name = str(form.get("name") or "").strip()[:200]
    email = found.email or normalise_email(str(form.get("email") or "")) or ""
    password, confirm = str(form.get("password") or ""), str(form.get("confirm") or "")
    try:
        if not name:
            raise InvalidInput("say your name")
        if not email:
            raise InvalidInput("give a valid email address")
        check_new_password(password, confirm, email)
        if await staff.account_by_email(uow.session, email) is not None:
            raise InvalidInput("an account with this email exists; sign in instead")
    except (InvalidInput, WeakPassword) as exc:
        return _accept_form(request, found, token, name=name, email=email, error=str(exc),
                            status=422)  # fmt: skip
    staff_id = await staff.accept(
        uow.session, found, email=email, name=name, password_hash=await hash_password(password)
    )
    if staff_id is None:
        raise NotFound("this invitation was already used; sign in instead")
    base = request.scope.get("root_path", "")
    return await _start_session(request, uow, staff_id, f"{base}/")


# --- one's account --------------------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, me: Me, done: str = "", error: str = "") -> Response:
    return templates(request).page(
        request, "account.html.j2", {"done": DONE.get(done, ""), "error": error}
    )


@router.post("/account/password")
async def change_password(request: Request, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    account = await staff.account_by_id(uow.session, me.account.id)
    assert account is not None
    if not await password_matches(account.password_hash, form.get("current", "")):
        return templates(request).page(
            request, "account.html.j2",
            {"done": "", "error": "The current password is not right."}, status=422,
        )  # fmt: skip
    new, confirm = form.get("password", ""), form.get("confirm", "")
    try:
        check_new_password(new, confirm, account.email)
    except WeakPassword as exc:
        return templates(request).page(
            request, "account.html.j2", {"done": "", "error": str(exc)}, status=422
        )
    await staff.set_password(uow.session, account.id, await hash_password(new))
    await staff.end_sessions(uow.session, account.id)
    base = request.scope.get("root_path", "")
    return await _start_session(request, uow, account.id, f"{base}/account?done=password")


# --- agents (admins) ------------------------------------------------------------------------


@router.get("/agents", response_class=HTMLResponse)
async def agents_page(request: Request, me: Me, uow: Uow, done: str = "") -> Response:
    require_admin(caller_of(me))
    agents = await uow.agents.list()
    loads = await uow.agents.open_loads()
    people = {a.agent_id: a for a in await staff.accounts(uow.session) if a.agent_id}
    invited = await staff.open_invitations(uow.session)
    auto = await read_flag(uow.session, AUTO_ASSIGN_FLAG, _settings(request).auto_assign)
    days = round(_settings(request).console_invitation_days)
    return templates(request).page(
        request,
        "agents.html.j2",
        {
            "agents": agents,
            "loads": loads,
            "people": people,
            "invited": invited,
            "invited_agents": {i.agent_id for i in invited if i.agent_id},
            "auto_assign": bool(auto),
            "done": DONE.get(done, "").format(days=days),
            "availability": [a.value for a in Availability],
        },
    )


@router.post("/agents/invite")
async def invite(request: Request, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    caller = caller_of(me)
    require_admin(caller)
    role = "admin" if form.get("role") == "admin" else "agent"
    name = form.get("name", "").strip()
    email = normalise_email(form.get("email", ""))
    if not name or email is None:
        raise InvalidInput("an invitation needs a name and a valid email address")
    if await staff.account_by_email(uow.session, email) is not None:
        raise InvalidInput(f"{email} already has an account")
    agent_id = None
    if role == "agent":
        existing = await uow.agents.by_email(email)
        agent = existing or await services.create_agent(
            uow,
            name=name,
            email=email,
            skills=_words(form.get("skills", "")),
            capacity=_capacity(form.get("capacity", "5")),
        )
        agent_id = agent.id
    ttl = timedelta(days=_settings(request).console_invitation_days)
    invitation_id = await staff.invite(
        uow.session, email=email, name=name, role=role, agent_id=agent_id, nonce=new_nonce(),
        created_by=caller.actor, ttl=ttl,
    )  # fmt: skip
    uow.emit(StaffInvited(invitation_id))
    await uow.commit()
    return back_to(request, "/agents", "invited")


@router.post("/agents/{agent_id:int}")
async def update_agent(request: Request, agent_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    require_admin(caller_of(me))
    agent = await _agent(uow, agent_id)
    agent.skills = _words(form.get("skills", ""))
    agent.capacity = _capacity(form.get("capacity", str(agent.capacity)))
    agent.slack_user_id = form.get("slack_user_id", "").strip() or None
    if form.get("availability") in {a.value for a in Availability}:
        agent.availability = Availability(form["availability"])
    await uow.commit()
    return back_to(request, "/agents", "saved")


@router.post("/agents/{agent_id:int}/deactivate")
async def deactivate(request: Request, agent_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    require_admin(caller_of(me))
    to = form.get("reassign_to", "")
    reassign_to = int(to) if to.isdigit() else None
    if reassign_to == agent_id:
        raise InvalidInput("choose another agent to take their tickets")
    await services.deactivate_agent(uow, agent_id, reassign_to=reassign_to)
    await uow.commit()
    return back_to(request, "/agents", "deactivated")


@router.post("/agents/{agent_id:int}/activate")
async def activate(request: Request, agent_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    require_admin(caller_of(me))
    agent = await _agent(uow, agent_id)
    agent.active, agent.availability = True, Availability.AVAILABLE
    await uow.commit()
    return back_to(request, "/agents", "activated")


@router.post("/settings/auto-assign")
async def switch_auto_assign(request: Request, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    require_admin(caller_of(me))
    await write_flag(uow.session, AUTO_ASSIGN_FLAG, form.get("enabled") == "on")
    await uow.commit()
    return back_to(request, "/agents", "switched")


async def _agent(uow: Uow, agent_id: int) -> Agent:
    agent = await uow.agents.get(agent_id)
    if agent is None:
        raise NotFound(f"there is no agent {agent_id}")
    return agent


def _words(text: str) -> list[str]:
    return sorted({w.strip().lower()[:32] for w in text.replace(";", ",").split(",") if w.strip()})


def _capacity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidInput("capacity is a whole number of tickets") from None
    if not 0 <= value <= 1000:
        raise InvalidInput("capacity is between 0 and 1,000 tickets")
    return value


# --- saved replies (admins) -----------------------------------------------------------------


@router.get("/canned", response_class=HTMLResponse)
async def canned_page(request: Request, me: Me, uow: Uow, done: str = "") -> Response:
    require_admin(caller_of(me))
    return templates(request).page(
        request,
        "canned.html.j2",
        {"canned": await staff.canned(uow.session), "done": DONE.get(done, "")},
    )


@router.post("/canned")
async def save_canned(request: Request, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    caller = caller_of(me)
    require_admin(caller)
    title, body = form.get("title", "").strip()[:100], form.get("body", "").strip()[:4000]
    if not title or not body:
        raise InvalidInput("a saved reply needs a title and a text")
    given = form.get("id", "")
    await staff.save_canned(
        uow.session, title=title, body=body, by=caller.actor,
        canned_id=int(given) if given.isdigit() else None,
    )  # fmt: skip
    await uow.commit()
    return back_to(request, "/canned", "saved")


@router.post("/canned/{canned_id:int}/delete")
async def delete_canned(request: Request, canned_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    require_admin(caller_of(me))
    await staff.delete_canned(uow.session, canned_id)
    await uow.commit()
    return back_to(request, "/canned", "deleted")
