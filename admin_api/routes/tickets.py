"""Tickets: list and search, detail with timeline, assignment, status, priority, notes,
replies, auto-assignment and its switch."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from admin_api import desk
from admin_api.deps import (
    AdminDep,
    AdminUnitOfWork,
    AgentDep,
    CallerDep,
    SettingsDep,
    SlaDep,
    UowDep,
    is_postgres,
)
from admin_api.problems import Problem
from admin_api.schemas import (
    NO_NUL,
    AssignIn,
    Assignment,
    AutoAssignIn,
    AutoAssignOut,
    AutoAssignSwitch,
    FileLink,
    Id,
    MessageOut,
    NoteIn,
    PriorityIn,
    ReplyIn,
    StatusIn,
    TicketDetail,
    TicketPage,
    TicketSummary,
    TimelineEntry,
    UtcDatetime,
)
from core import services
from core.db.queries import (
    AUTO_ASSIGN_FLAG,
    Sort,
    TicketFilter,
    is_breached,
    list_tickets,
    read_flag,
    summary,
    write_flag,
)
from core.lifecycle import Status
from core.model import Channel, Message, Priority, Ticket, utcnow

router = APIRouter(prefix="/tickets", tags=["tickets"])
settings_router = APIRouter(prefix="/settings", tags=["settings"])

Category = Annotated[str, Query(min_length=1, max_length=64, pattern=NO_NUL)]


@router.get("", response_model=TicketPage, summary="List and search tickets")
async def list_all(
    _: CallerDep,
    uow: UowDep,
    status: Annotated[list[Status] | None, Query(description="Repeat for several.")] = None,
    priority: Annotated[list[Priority] | None, Query()] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    assignee_id: Annotated[Id | None, Query()] = None,
    customer_id: Annotated[Id | None, Query()] = None,
    unassigned: bool | None = None,
    sla_breached: bool | None = None,
    created_from: Annotated[UtcDatetime | None, Query(description="Inclusive.")] = None,
    created_to: Annotated[UtcDatetime | None, Query(description="Exclusive.")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_NUL,
            description=(
                "Words in the subject or description (all of them; whole words on "
                "PostgreSQL), or a reference (CR-1042)."
            ),
        ),
    ] = None,
    sort: Sort = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
) -> TicketPage:
    f = TicketFilter(
        status=status or (),
        priority=priority or (),
        category=category or (),
        assignee_id=assignee_id,
        customer_id=customer_id,
        unassigned=unassigned,
        sla_breached=sla_breached,
        created_from=created_from,
        created_to=created_to,
        q=q,
    )
    return await ticket_page(uow, f, sort=sort, limit=limit, cursor=cursor)


async def ticket_page(
    uow: AdminUnitOfWork, f: TicketFilter, *, sort: Sort, limit: int, cursor: str | None
) -> TicketPage:
    postgres = is_postgres(uow)
    rows, next_cursor = await list_tickets(
        uow.session, f, postgres=postgres, sort=sort, limit=limit, cursor=cursor
    )
    now = utcnow()
    return TicketPage(
        items=[TicketSummary.model_validate(summary(r, now)) for r in rows],
        next_cursor=next_cursor,
    )


def _detail(ticket: Ticket, timeline: list[TimelineEntry]) -> TicketDetail:
    assert ticket.id is not None
    now = utcnow()
    return TicketDetail(
        id=ticket.id,
        reference=ticket.reference,
        subject=ticket.subject,
        description=ticket.description,
        category=ticket.category,
        priority=ticket.priority,
        status=ticket.status,
        channel=ticket.channel,
        language=ticket.language,
        customer_id=ticket.customer_id,
        assignee_id=ticket.assignee_id,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        first_response_due=ticket.first_response_due,
        resolution_due=ticket.resolution_due,
        sla_breached=is_breached(ticket, now),
        csat_score=ticket.csat_score,
        csat_comment=ticket.csat_comment,
        human_requested=ticket.human_requested,
        timeline=timeline,
    )


async def _detail_of(uow: AdminUnitOfWork, ticket: Ticket) -> TicketDetail:
    assert ticket.id is not None
    entries: list[TimelineEntry] = []
    for e in await uow.tickets.timeline(ticket.id):
        assert e.id is not None
        if isinstance(e, Message):
            entries.append(
                TimelineEntry(
                    type="message", id=e.id, created_at=e.created_at, author=e.author.value,
                    body=e.body, channel=e.channel.value if e.channel else None,
                    agent_id=e.agent_id, attachments=e.attachments,
                )
            )  # fmt: skip
        else:
            entries.append(
                TimelineEntry(
                    type="activity", id=e.id, created_at=e.created_at, kind=e.kind,
                    actor=e.actor, detail=e.detail,
                )
            )  # fmt: skip
    return _detail(ticket, entries)


@router.get("/{ticket_id:int}", response_model=TicketDetail, summary="A ticket and its timeline")
async def get_one(ticket_id: Id, _: CallerDep, uow: UowDep) -> TicketDetail:
    return await _detail_of(uow, await services.get_ticket(uow, ticket_id))


StoredId = Annotated[
    str, Path(pattern="^[0-9a-f]{32}$", description="An attachment's `stored_id`.")
]


@router.get(
    "/{ticket_id:int}/files/{stored_id}",
    response_model=FileLink,
    summary="A signed link to one of the ticket's attachments",
    description="The link works without a key until `expires_at` (setting "
    "`CARELINE_FILE_LINK_MINUTES`); the file downloads as an attachment.",
)
async def file_link(
    ticket_id: Id, stored_id: StoredId, request: Request, _: CallerDep, uow: UowDep
) -> FileLink:
    ticket = await services.get_ticket(uow, ticket_id)
    named = [
        a
        for e in await uow.tickets.timeline(ticket_id)
        if isinstance(e, Message)
        for a in e.attachments
        if a.get("stored_id") == stored_id
    ]
    if not named:
        raise Problem(404, f"{ticket.reference} has no attachment {stored_id}", code="not_found")
    links = request.app.state.file_links()
    if links is None:
        raise Problem(503, "the server is starting; try again in a moment", code="unavailable")
    now = time.time()
    found = named[0]
    return FileLink(
        url=links.path(stored_id, now=now),
        expires_at=datetime.fromtimestamp(now + links.ttl_seconds, UTC),
        name=str(found.get("name") or "file"),
        mime_type=str(found.get("mime_type") or "application/octet-stream"),
        size=int(found.get("size") or 0),
    )


async def _done(uow: AdminUnitOfWork, ticket: Ticket) -> TicketDetail:
    await uow.commit()
    return await _detail_of(uow, ticket)


@router.post(
    "/{ticket_id:int}/assign",
    response_model=TicketDetail,
    summary="Assign or reassign a ticket",
    description="Checks the agent is active and below capacity unless `force` is true.",
)
async def assign(ticket_id: Id, body: AssignIn, caller: AdminDep, uow: UowDep) -> TicketDetail:
    ticket = await desk.assign(uow, caller, ticket_id, body.agent_id, force=body.force)
    return await _done(uow, ticket)


@router.post("/{ticket_id:int}/unassign", response_model=TicketDetail, summary="Unassign a ticket")
async def unassign(ticket_id: Id, caller: AdminDep, uow: UowDep) -> TicketDetail:
    return await _done(uow, await desk.unassign(uow, caller, ticket_id))


@router.post(
    "/{ticket_id:int}/claim",
    response_model=TicketDetail,
    summary="Take an unassigned ticket (agent keys)",
)
async def claim(ticket_id: Id, caller: AgentDep, uow: UowDep) -> TicketDetail:
    return await _done(uow, await desk.claim(uow, caller, ticket_id))


@router.post("/{ticket_id:int}/status", response_model=TicketDetail, summary="Change the status")
async def change_status(
    ticket_id: Id, body: StatusIn, caller: CallerDep, uow: UowDep
) -> TicketDetail:
    ticket = await desk.change_status(uow, caller, ticket_id, body.status, body.reason)
    return await _done(uow, ticket)


@router.post(
    "/{ticket_id:int}/priority", response_model=TicketDetail, summary="Change the priority"
)
async def change_priority(
    ticket_id: Id, body: PriorityIn, caller: CallerDep, uow: UowDep, sla: SlaDep
) -> TicketDetail:
    ticket = await desk.change_priority(uow, caller, ticket_id, body.priority, sla)
    return await _done(uow, ticket)


@router.post(
    "/{ticket_id:int}/notes", status_code=201, response_model=MessageOut, summary="Internal note"
)
async def add_note(ticket_id: Id, body: NoteIn, caller: CallerDep, uow: UowDep) -> MessageOut:
    message = await desk.add_note(uow, caller, ticket_id, body.body, channel=Channel.API)
    await uow.commit()
    return MessageOut.model_validate(message)


@router.post(
    "/{ticket_id:int}/replies",
    status_code=201,
    response_model=MessageOut,
    summary="Reply to the customer",
    description="The same path as a reply in the ticket's Slack thread: the relay delivers it "
    "to the customer's channel. The first reply claims an unassigned ticket.",
)
async def reply(ticket_id: Id, body: ReplyIn, caller: CallerDep, uow: UowDep) -> MessageOut:
    message = await desk.reply(
        uow, caller, ticket_id, body.body, channel=Channel.API, agent_id=body.agent_id
    )
    await uow.commit()
    return MessageOut.model_validate(message)


@router.post(
    "/auto-assign",
    response_model=AutoAssignOut,
    summary="Auto-assign waiting tickets now",
    description="Oldest unassigned first, each to the least-loaded available agent with the "
    "skill and room. Runs whether or not the automatic switch is on.",
)
async def auto_assign_now(
    _: AdminDep, uow: UowDep, body: AutoAssignIn | None = None
) -> AutoAssignOut:
    done = await services.auto_assign(uow, limit=body.limit if body else 100)
    await uow.commit()
    return AutoAssignOut(
        assigned=[
            Assignment(ticket_id=tk.id or 0, reference=tk.reference, agent_id=ag.id or 0)
            for tk, ag in done
        ]
    )


@settings_router.get(
    "/auto-assign", response_model=AutoAssignSwitch, summary="Is automatic assignment on?"
)
async def get_auto_assign(_: AdminDep, uow: UowDep, settings: SettingsDep) -> AutoAssignSwitch:
    value = await read_flag(uow.session, AUTO_ASSIGN_FLAG, settings.auto_assign)
    return AutoAssignSwitch(enabled=bool(value))


@settings_router.put(
    "/auto-assign", response_model=AutoAssignSwitch, summary="Turn automatic assignment on/off"
)
async def put_auto_assign(body: AutoAssignSwitch, _: AdminDep, uow: UowDep) -> AutoAssignSwitch:
    await write_flag(uow.session, AUTO_ASSIGN_FLAG, body.enabled)
    await uow.commit()
    return body
