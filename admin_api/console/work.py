"""Working tickets in the console: the queue and a ticket's page, and every action on it
(through admin_api/desk.py, the same rules and services as the admin API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from admin_api import desk
from admin_api.console.app import Me, Uow, back_to, caller_of, form_of, templates
from admin_api.deps import is_postgres
from core import services
from core.access import Caller
from core.db import staff
from core.db.queries import TicketFilter, is_breached, list_tickets, summary
from core.errors import InvalidInput
from core.lifecycle import TRANSITIONS, Status
from core.model import Author, Channel, Message, Priority, Ticket, TicketActivity, utcnow

router = APIRouter(include_in_schema=False)

PAGE = 50  # as the admin API: the same plans, measured by bench/admin_bench.py
PRESENT_WITHIN = timedelta(seconds=45)  # the page says "here" every 15 s
VIEWS = ("mine", "unassigned", "all")
DONE = {
    "replied": "Reply sent. The customer gets it in their chat, and by email if they chose it.",
    "noted": "Internal note added. The customer does not see it.",
    "claimed": "The ticket is yours.",
    "status": "Status changed.",
    "priority": "Priority changed.",
    "assigned": "Ticket assigned.",
    "unassigned": "Ticket unassigned.",
}


# --- the queue ------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def queue(
    request: Request,
    me: Me,
    uow: Uow,
    view: str = "",
    status: str = "",
    priority: str = "",
    category: str = "",
    breached: str = "",
    q: str = "",
    cursor: str | None = None,
    fragment: str = "",
) -> Response:
    caller = caller_of(me)
    view = view if view in VIEWS else ("mine" if caller.agent_id else "unassigned")
    chosen = {"view": view, "status": status, "priority": priority, "category": category,
              "breached": breached, "q": q[:200]}  # fmt: skip
    f = TicketFilter(
        status=_enum(Status, status),
        priority=_enum(Priority, priority),
        category=(category.strip().lower()[:64],) if category.strip() else (),
        assignee_id=(caller.agent_id or -1) if view == "mine" else None,
        unassigned=True if view == "unassigned" else None,
        sla_breached=True if breached else None,
        q=q.strip()[:200] or None,
    )
    rows, next_cursor = await list_tickets(
        uow.session, f, postgres=is_postgres(uow), limit=PAGE, cursor=cursor or None
    )
    now = utcnow()
    agents = {a.id: a.name for a in await uow.agents.list()}
    context = {
        "tickets": [summary(r, now) for r in rows],
        "agents": agents,
        "chosen": chosen,
        "next_cursor": next_cursor,
        "statuses": [s.value for s in Status],
        "priorities": [p.value for p in Priority],
        "views": VIEWS,
    }
    name = "queue_rows.html.j2" if fragment == "rows" else "queue.html.j2"
    return templates(request).page(request, name, context)


def _chosen(kind: Any, value: str) -> Any:
    """The one value a form's select chose."""
    found = _enum(kind, value)
    if not found:
        raise InvalidInput(f"choose a {kind.__name__.lower()}")
    return found[0]


def _enum(kind: Any, value: str) -> tuple[Any, ...]:
    if not value:
        return ()
    try:
        return (kind(value),)
    except ValueError:
        raise InvalidInput(f"{value!r} is not a {kind.__name__.lower()}") from None


# --- a ticket -------------------------------------------------------------------------------


@router.get("/tickets/{ticket_id:int}", response_class=HTMLResponse)
async def ticket_page(
    request: Request, ticket_id: int, me: Me, uow: Uow, done: str = "", canned: int = 0
) -> Response:
    caller = caller_of(me)
    ticket = await services.get_ticket(uow, ticket_id)
    await staff.seen(uow.session, ticket_id, me.account.id, replying=False)
    await uow.commit()
    context = await _ticket_context(request, uow, caller, ticket, me.account.id)
    chosen = [c for c in context["canned"] if c["id"] == canned]
    context["draft"] = chosen[0]["text"] if chosen else ""
    context["done"] = DONE.get(done, "")
    return templates(request).page(request, "ticket.html.j2", context)


@router.get("/tickets/{ticket_id:int}/timeline", response_class=HTMLResponse)
async def timeline_fragment(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    """The timeline alone, for the page's live updates."""
    ticket = await services.get_ticket(uow, ticket_id)
    context = await _ticket_context(request, uow, caller_of(me), ticket, me.account.id)
    return templates(request).page(request, "timeline.html.j2", context)


async def _ticket_context(
    request: Request, uow: Uow, caller: Caller, ticket: Ticket, staff_id: int
) -> dict[str, Any]:
    assert ticket.id is not None
    customer = await uow.customers.get(ticket.customer_id)
    agents = list(await uow.agents.list())
    names = {a.id: a.name for a in agents}
    loads = await uow.agents.open_loads()
    mine = caller.is_admin or ticket.assignee_id == caller.agent_id
    claimable = caller.agent_id is not None and ticket.assignee_id is None
    links = request.app.state.file_links()
    customer_name = customer.display_name if customer else ""
    agent_name = names.get(caller.agent_id or ticket.assignee_id or 0, caller.name)
    fields = {"customer_name": customer_name or "there", "reference": ticket.reference,
              "agent_name": agent_name, "subject": ticket.subject}  # fmt: skip
    return {
        "ticket": ticket,
        "customer": customer,
        "entries": _entries(await uow.tickets.timeline(ticket.id), names, links),
        "assignee": names.get(ticket.assignee_id or 0),
        "agents": [a for a in agents if a.active],
        "loads": loads,
        "may_work": mine,
        "may_reply": mine or claimable,
        "claimable": claimable,
        "is_admin": caller.is_admin,
        "next_statuses": [s.value for s in Status if s in TRANSITIONS[ticket.status]],
        "priorities": [p.value for p in Priority],
        "others": await staff.others_on(uow.session, ticket.id, staff_id, PRESENT_WITHIN),
        "canned": [
            {"id": c.id, "title": c.title, "text": _fill(c.body, fields)}
            for c in await staff.canned(uow.session)
        ],
        "placeholders": sorted(fields),
        "breached": is_breached(ticket, utcnow()),
    }


def _fill(text: str, fields: dict[str, str]) -> str:
    """A saved reply's placeholders ({customer_name}, {reference}, ...) filled; any other
    braces stay as written."""
    for key, value in fields.items():
        text = text.replace("{" + key + "}", value)
    return text


def _entries(entries: Any, names: dict[int | None, str], links: Any) -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, Message):
            who = {
                Author.CUSTOMER: "Customer",
                Author.BOT: "Careline bot",
                Author.AGENT: names.get(entry.agent_id, "Agent"),
                Author.NOTE: f"Note by {names.get(entry.agent_id, 'staff')}",
            }[entry.author]
            files = [
                {
                    "name": str(a.get("name") or "file"),
                    "url": links.path(a["stored_id"]) if links and a.get("stored_id") else None,
                }
                for a in entry.attachments
            ]
            shown.append({"kind": entry.author.value, "who": who, "at": entry.created_at,
                          "text": entry.body, "files": files,
                          "via": entry.channel.value if entry.channel else ""})  # fmt: skip
        elif isinstance(entry, TicketActivity):
            shown.append({"kind": "activity", "who": _actor(entry.actor, names),
                          "at": entry.created_at,
                          "text": _activity(entry, names), "files": [], "via": ""})  # fmt: skip
    return shown


def _actor(actor: str, names: dict[int | None, str]) -> str:
    """`agent:7` -> the agent's name, `admin:Ada` -> Ada, `system` -> Careline."""
    kind, _, who = actor.partition(":")
    if kind == "agent" and who.isdigit():
        return names.get(int(who), "An agent")
    if kind == "admin" and who:
        return f"{who} (admin)"
    return {"system": "Careline", "customer": "Customer"}.get(actor, actor)


def _activity(activity: TicketActivity, names: dict[int | None, str]) -> str:
    detail = activity.detail
    if activity.kind == "status_changed":
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        return f"Status: {detail.get('old', '?')} → {detail.get('new', '?')}{reason}"
    if activity.kind == "assigned":
        return f"Assigned to {detail.get('agent') or names.get(detail.get('agent_id'), 'an agent')}"
    if activity.kind == "unassigned":
        return "Unassigned"
    if activity.kind == "priority_changed":
        return f"Priority: {detail.get('old', '?')} → {detail.get('new', '?')}"
    if activity.kind.startswith("sla_breached:"):
        return f"SLA breached: {activity.kind.split(':', 1)[1].replace('_', ' ')} was due"
    if activity.kind == "rated":
        return f"Rated {detail.get('score')} of 5"
    return activity.kind.replace("_", " ").capitalize()


# --- actions --------------------------------------------------------------------------------


@router.post("/tickets/{ticket_id:int}/reply")
async def reply(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    body = _text(form.get("body", ""))
    await desk.reply(uow, caller_of(me), ticket_id, body, channel=Channel.CONSOLE)
    await staff.seen(uow.session, ticket_id, me.account.id, replying=False)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "replied")


@router.post("/tickets/{ticket_id:int}/note")
async def note(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    body = _text(form.get("body", ""))
    await desk.add_note(uow, caller_of(me), ticket_id, body, channel=Channel.CONSOLE)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "noted")


@router.post("/tickets/{ticket_id:int}/claim")
async def claim(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    await desk.claim(uow, caller_of(me), ticket_id)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "claimed")


@router.post("/tickets/{ticket_id:int}/status")
async def change_status(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    target = _chosen(Status, form.get("status", ""))
    reason = form.get("reason", "").strip()[:500]
    await desk.change_status(uow, caller_of(me), ticket_id, target, reason)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "status")


@router.post("/tickets/{ticket_id:int}/priority")
async def change_priority(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    target = _chosen(Priority, form.get("priority", ""))
    await desk.change_priority(uow, caller_of(me), ticket_id, target, request.app.state.sla)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "priority")


@router.post("/tickets/{ticket_id:int}/assign")
async def assign(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    form = await form_of(request, me)
    chosen = form.get("agent_id", "")
    if not chosen.isdigit():
        raise InvalidInput("choose an agent")
    await desk.assign(uow, caller_of(me), ticket_id, int(chosen), force=form.get("force") == "on")
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "assigned")


@router.post("/tickets/{ticket_id:int}/unassign")
async def unassign(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    await desk.unassign(uow, caller_of(me), ticket_id)
    await uow.commit()
    return back_to(request, f"/tickets/{ticket_id}", "unassigned")


@router.post("/tickets/{ticket_id:int}/presence")
async def presence(request: Request, ticket_id: int, me: Me, uow: Uow) -> Response:
    """The page says it is open (and whether a reply is being written); the answer names
    who else is on the ticket."""
    form = await form_of(request, me)
    await services.get_ticket(uow, ticket_id)
    await staff.seen(uow.session, ticket_id, me.account.id, replying=form.get("replying") == "1")
    await uow.commit()
    others = await staff.others_on(uow.session, ticket_id, me.account.id, PRESENT_WITHIN)
    return JSONResponse({"others": [{"name": n, "replying": r} for n, r in others]})


def _text(body: str) -> str:
    body = body.strip()
    if not body:
        raise InvalidInput("write something first")
    if len(body) > 20_000:
        raise InvalidInput("a message has at most 20,000 characters")
    if "\x00" in body:
        raise InvalidInput("a message cannot hold NUL characters")
    return body
