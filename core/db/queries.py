"""Read-side SQL of the admin API: ticket lists and search, dead letters, reports, flags.

Ticket lists page by keyset over (sort column, id): every page is one index walk, however
deep, and no total is counted. Text search matches whole words with the full-text GIN
index on PostgreSQL (`ticket_search_document()` in core/db/tables.py), and substrings with
LIKE on SQLite.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import (
    Date,
    Float,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from core.db import tables as t
from core.db.flags import AUTO_ASSIGN, read_flag, write_flag  # noqa: F401  (used by routes)
from core.errors import Conflict, InvalidInput, NotFound
from core.lifecycle import ACTIVE_STATUSES, Status
from core.model import MAX_ID, Priority, reference_of, ticket_id_from_reference, utcnow

c = t.tickets.c
ACTIVE = sorted(s.value for s in ACTIVE_STATUSES)

Sort = Literal["-created_at", "created_at", "-updated_at", "updated_at"]
MAX_SEARCH_WORDS = 8
AUTO_ASSIGN_FLAG = AUTO_ASSIGN


# --- cursors ---------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """The values a cursor carries, checked against `shape`; InvalidInput if tampered."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(shape):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, shape, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif kind is int and isinstance(value, int) and 0 <= value < 2**63:
                out.append(value)
            else:
                raise ValueError("wrong type")
        return out
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("the cursor is not valid; start again without it") from exc


# --- tickets ---------------------------------------------------------------------------


@dataclass(slots=True)
class TicketFilter:
    status: Sequence[Status] = ()
    priority: Sequence[Priority] = ()
    category: Sequence[str] = ()
    assignee_id: int | None = None
    customer_id: int | None = None
    unassigned: bool | None = None
    sla_breached: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None
    extra: list[ColumnElement[bool]] = field(default_factory=list)


SUMMARY_COLUMNS = (
    c.id, c.subject, c.category, c.priority, c.status, c.channel, c.language, c.customer_id,
    c.assignee_id, c.created_at, c.updated_at, c.first_response_at, c.resolved_at,
    c.first_response_due, c.resolution_due,
)  # fmt: skip


# Literal, not bound: PostgreSQL uses a partial index only when it can prove the query's
# predicate implies the index's, which a generic prepared-statement plan cannot do with
# parameters. Same text as `ix_tickets_active_created`.
IS_ACTIVE = text("tickets.status IN ('new', 'open', 'waiting')")
assert ACTIVE == ["new", "open", "waiting"], "keep IS_ACTIVE and the partial index in step"


def breached(now: datetime) -> ColumnElement[bool]:
    """Active and past a due time; never NULL, so NOT() means "not breached"."""
    return and_(
        IS_ACTIVE,
        or_(
            and_(c.first_response_at.is_(None), c.first_response_due.is_not(None),
                 c.first_response_due <= now),
            and_(c.resolution_due.is_not(None), c.resolution_due <= now),
        ),
    )  # fmt: skip


def is_breached(row: Any, now: datetime) -> bool:
    if row.status not in ACTIVE_STATUSES:
        return False
    if row.first_response_at is None and row.first_response_due and row.first_response_due <= now:
        return True
    return bool(row.resolution_due and row.resolution_due <= now)


def search_words(q: str) -> list[str]:
    return [w.lower() for w in re.findall(r"\w+", q)][:MAX_SEARCH_WORDS]


def _search(q: str, postgres: bool) -> ColumnElement[bool] | None:
    ticket_id = ticket_id_from_reference(q)
    if ticket_id is not None:
        # A reference past any id finds nothing (the driver cannot even bind it).
        return c.id == ticket_id if ticket_id <= MAX_ID else false()
    words = search_words(q)
    if not words:
        return None
    if postgres:
        # Whole words only: with a prefix (`refu:*`) the planner cannot estimate how many
        # tickets match, and a rare prefix then walks the whole date index (seconds).
        query = " & ".join(words)
        return t.ticket_search_document().op("@@")(
            func.to_tsquery(text("'simple'::regconfig"), bindparam("tsquery", query))
        )
    return and_(
        *(or_(c.subject.contains(w, autoescape=True), c.description.contains(w, autoescape=True))
          for w in words)
    )  # fmt: skip


def ticket_conditions(f: TicketFilter, *, postgres: bool, now: datetime) -> list[Any]:
    where: list[Any] = list(f.extra)
    if f.status:
        where.append(c.status.in_([Status(s).value for s in f.status]))
    if f.priority:
        where.append(c.priority.in_([Priority(p).value for p in f.priority]))
    if f.category:
        where.append(c.category.in_([x.strip().lower() for x in f.category]))
    if f.assignee_id is not None:
        where.append(c.assignee_id == f.assignee_id)
    if f.customer_id is not None:
        where.append(c.customer_id == f.customer_id)
    if f.unassigned is True:
        where.append(c.assignee_id.is_(None))
    elif f.unassigned is False:
        where.append(c.assignee_id.is_not(None))
    if f.sla_breached is True:
        where.append(breached(now))
    elif f.sla_breached is False:
        where.append(not_(breached(now)))
    if f.created_from is not None:
        where.append(c.created_at >= f.created_from)
    if f.created_to is not None:
        where.append(c.created_at < f.created_to)
    if f.q:
        condition = _search(f.q, postgres)
        if condition is not None:
            where.append(condition)
    return where


async def list_tickets(
    session: AsyncSession,
    f: TicketFilter,
    *,
    postgres: bool,
    sort: Sort = "-created_at",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Any], str | None]:
    """One page of ticket summaries and the cursor of the next page (None at the end)."""
    now = utcnow()
    column = c.created_at if sort.endswith("created_at") else c.updated_at
    descending = sort.startswith("-")
    stmt = select(*SUMMARY_COLUMNS).where(*ticket_conditions(f, postgres=postgres, now=now))
    if cursor:
        after_at, after_id = decode_cursor(cursor, (datetime, int))
        key = tuple_(column, c.id)
        mark = tuple_(
            bindparam("after_at", after_at, type_=column.type), bindparam("after_id", after_id)
        )
        stmt = stmt.where(key < mark if descending else key > mark)
    if descending:
        stmt = stmt.order_by(column.desc(), c.id.desc())
    else:
        stmt = stmt.order_by(column.asc(), c.id.asc())
    rows = list((await session.execute(stmt.limit(limit + 1))).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        sort_value = last.created_at if column is c.created_at else last.updated_at
        next_cursor = encode_cursor(sort_value, last.id)
    return rows, next_cursor


def summary(row: Any, now: datetime | None = None) -> dict[str, Any]:
    data = {col.name: getattr(row, col.name) for col in SUMMARY_COLUMNS}
    data["reference"] = reference_of(row.id)
    data["sla_breached"] = is_breached(row, now or utcnow())
    return data


# --- flags -----------------------------------------------------------------------------


# --- dead letters ----------------------------------------------------------------------

d = t.outbox_deliveries.c
o = t.outbox.c


async def list_dead_letters(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = (
        select(d.id, d.event_id, d.handler, d.status, d.attempts, d.last_error, d.updated_at,
               o.event_type, o.payload, o.created_at)
        .join(t.outbox, o.id == d.event_id)
        .where(d.status == "dead")
        .order_by(d.id.desc())
        .limit(limit + 1)
    )  # fmt: skip
    if cursor:
        (after_id,) = decode_cursor(cursor, (int,))
        stmt = stmt.where(d.id < after_id)
    rows = list((await session.execute(stmt)).all())
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    items = []
    for r in rows[:limit]:
        payload = r.payload if isinstance(r.payload, dict) else {}
        ticket_id = payload.get("ticket_id")
        items.append(
            {
                "id": r.id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "handler": r.handler,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "updated_at": r.updated_at,
                "created_at": r.created_at,
                "ticket_id": ticket_id if isinstance(ticket_id, int) else None,
            }
        )
    return items, next_cursor


async def retry_dead_letter(session: AsyncSession, delivery_id: int) -> None:
    """Give a dead delivery back to the relay (contract in the team map): the delivery is
    `failed` and due now, its outbox row `pending` and available now. Attempts restart."""
    now = utcnow()
    status = await session.scalar(select(d.status).where(d.id == delivery_id))
    if status is None:
        raise NotFound(f"there is no delivery {delivery_id}")
    if status != "dead":
        raise Conflict(f"delivery {delivery_id} is {status}, not a dead letter")
    event_id = await session.scalar(
        update(t.outbox_deliveries)
        .where(d.id == delivery_id, d.status == "dead")
        .values(status="failed", next_attempt_at=now, attempts=0, updated_at=now)
        .returning(d.event_id)
    )
    if event_id is None:
        raise Conflict(f"delivery {delivery_id} was retried at the same time")
    await session.execute(
        update(t.outbox)
        .where(o.id == event_id)
        .values(status="pending", available_at=now, locked_by=None, locked_until=None)
    )


# --- reports ---------------------------------------------------------------------------


def _seconds(later: Any, earlier: Any, postgres: bool) -> ColumnElement[float]:
    if postgres:
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _day(column: Any, postgres: bool) -> ColumnElement[Any]:
    if postgres:
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _within(column: Any, since: datetime, until: datetime) -> ColumnElement[bool]:
    return and_(column >= since, column < until)


def _mean(values: ColumnElement[Any]) -> ColumnElement[float]:
    return cast(func.avg(values), Float)


async def agent_report(
    session: AsyncSession, since: datetime, until: datetime, *, postgres: bool
) -> list[dict[str, Any]]:
    """Per agent: open now; resolved, mean first-response and resolution time and CSAT of
    the period (first responses and resolutions that happened in it)."""
    responded = _within(c.first_response_at, since, until)
    resolved = _within(c.resolved_at, since, until)
    stats = (
        select(
            c.assignee_id.label("agent_id"),
            func.count().filter(c.status.in_(ACTIVE)).label("open"),
            func.count().filter(resolved).label("resolved"),
            _mean(case((responded, _seconds(c.first_response_at, c.created_at, postgres))))
            .label("mean_first_response_seconds"),
            _mean(case((resolved, _seconds(c.resolved_at, c.created_at, postgres))))
            .label("mean_resolution_seconds"),
            _mean(case((resolved, c.csat_score))).label("csat"),
            func.count(case((resolved, c.csat_score))).label("csat_responses"),
        )
        .where(c.assignee_id.is_not(None), or_(IS_ACTIVE, resolved, responded))
        .group_by(c.assignee_id)
        .subquery()
    )  # fmt: skip
    a = t.agents.c
    rows = await session.execute(
        select(a.id, a.name, stats).outerjoin(stats, stats.c.agent_id == a.id).order_by(a.id)
    )
    return [
        {
            "agent_id": r.id,
            "name": r.name,
            "open": r.open or 0,
            "resolved": r.resolved or 0,
            "mean_first_response_seconds": r.mean_first_response_seconds,
            "mean_resolution_seconds": r.mean_resolution_seconds,
            "csat": r.csat,
            "csat_responses": r.csat_responses or 0,
        }
        for r in rows
    ]


async def category_report(
    session: AsyncSession, since: datetime, until: datetime, *, postgres: bool
) -> list[dict[str, Any]]:
    opened = _within(c.created_at, since, until)
    resolved = _within(c.resolved_at, since, until)
    now = utcnow()
    # Missed: a ticket of the period answered or resolved after its due time (or still not,
    # and past it now).
    missed = or_(
        c.first_response_due < func.coalesce(c.first_response_at, now),
        c.resolution_due < func.coalesce(c.resolved_at, now),
    )
    rows = await session.execute(
        select(
            c.category,
            c.priority,
            func.count().filter(opened).label("opened"),
            func.count().filter(resolved).label("resolved"),
            func.count().filter(c.status.in_(ACTIVE)).label("open"),
            _mean(case((resolved, _seconds(c.resolved_at, c.created_at, postgres))))
            .label("mean_resolution_seconds"),
            func.count().filter(and_(opened, missed)).label("sla_missed"),
            _mean(case((resolved, c.csat_score))).label("csat"),
            func.count(case((resolved, c.csat_score))).label("csat_responses"),
        )
        .where(or_(opened, resolved, IS_ACTIVE))  # each an index: a bitmap OR
        .group_by(c.category, c.priority)
        .order_by(c.category, c.priority)
    )  # fmt: skip
    return [dict(r._mapping) for r in rows]


async def daily_report(
    session: AsyncSession, since: datetime, until: datetime, *, postgres: bool
) -> list[dict[str, Any]]:
    opened_day = _day(c.created_at, postgres)
    resolved_day = _day(c.resolved_at, postgres)
    opened = await session.execute(
        select(opened_day, func.count()).where(_within(c.created_at, since, until))
        .group_by(opened_day)
    )  # fmt: skip
    resolved = await session.execute(
        select(resolved_day, func.count()).where(_within(c.resolved_at, since, until))
        .group_by(resolved_day)
    )  # fmt: skip
    days: dict[date, dict[str, int]] = {}
    for day, n in opened:
        days.setdefault(_as_date(day), {"opened": 0, "resolved": 0})["opened"] = n
    for day, n in resolved:
        days.setdefault(_as_date(day), {"opened": 0, "resolved": 0})["resolved"] = n
    return [{"day": day, **counts} for day, counts in sorted(days.items())]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# --- the console's live marks -----------------------------------------------------------
# Cheap reads that change whenever what a page shows changes; the console's live stream
# compares them every few seconds (each an index walk, at 1,000,000 tickets too).


async def queue_mark(session: AsyncSession) -> str:
    """Changes when any ticket is opened or changed (`ix_tickets_updated_id`)."""
    newest = await session.scalar(select(func.max(c.updated_at)))
    return newest.isoformat() if newest else ""


async def ticket_mark(session: AsyncSession, ticket_id: int) -> str:
    """Changes with a ticket's messages, activities and fields."""
    m, a = t.messages.c, t.ticket_activities.c
    row = (
        await session.execute(
            select(
                select(c.updated_at).where(c.id == ticket_id).scalar_subquery(),
                select(func.max(m.id)).where(m.ticket_id == ticket_id).scalar_subquery(),
                select(func.max(a.id)).where(a.ticket_id == ticket_id).scalar_subquery(),
            )
        )
    ).one()
    return "|".join(str(value) for value in row)
