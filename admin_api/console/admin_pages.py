"""The admins' other pages: reports with charts, dead letters with retry, and API keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from admin_api.console.app import Me, Uow, back_to, caller_of, form_of, templates
from admin_api.deps import is_postgres
from core.access import require_admin
from core.db import keys
from core.db.queries import (
    agent_report,
    category_report,
    daily_report,
    list_dead_letters,
    retry_dead_letter,
)
from core.errors import InvalidInput
from core.model import utcnow

router = APIRouter(include_in_schema=False)

PERIODS = {"7": 7, "30": 30, "90": 90}
CHART_HEIGHT = 120
DAY_WIDTH = 20  # two bars of 8 and a gap


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request, me: Me, uow: Uow, days: str = "30") -> Response:
    require_admin(caller_of(me))
    period = PERIODS.get(days, 30)
    until = utcnow()
    since = until - timedelta(days=period)
    postgres = is_postgres(uow)
    daily = _every_day(await daily_report(uow.session, since, until, postgres=postgres),
                       since, until)  # fmt: skip
    peak = max([1, *(max(d["opened"], d["resolved"]) for d in daily)])
    return templates(request).page(
        request,
        "reports.html.j2",
        {
            "days": period,
            "periods": list(PERIODS),
            "daily": daily,
            "bars": _bars(daily, peak),
            "peak": peak,
            "height": CHART_HEIGHT,
            "agents": await agent_report(uow.session, since, until, postgres=postgres),
            "categories": await category_report(uow.session, since, until, postgres=postgres),
        },
    )


def _every_day(
    daily: list[dict[str, Any]], since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """The report's days with a zero for each day that had no ticket."""
    found = {d["day"]: d for d in daily}
    days = (until.date() - since.date()).days + 1
    return [
        found.get(day, {"day": day, "opened": 0, "resolved": 0})
        for day in (since.date() + timedelta(days=n) for n in range(days))
    ]


def _bars(daily: list[dict[str, Any]], peak: int) -> list[dict[str, Any]]:
    """Two bars a day (opened, resolved), scaled to the chart's height."""
    return [
        {
            "day": d["day"],
            "x": i * DAY_WIDTH,
            "opened": round(d["opened"] / peak * CHART_HEIGHT),
            "resolved": round(d["resolved"] / peak * CHART_HEIGHT),
            "n_opened": d["opened"],
            "n_resolved": d["resolved"],
        }
        for i, d in enumerate(daily)
    ]


@router.get("/dead-letters", response_class=HTMLResponse)
async def dead_letters(
    request: Request, me: Me, uow: Uow, cursor: str | None = None, done: str = ""
) -> Response:
    require_admin(caller_of(me))
    items, next_cursor = await list_dead_letters(uow.session, limit=50, cursor=cursor or None)
    return templates(request).page(
        request,
        "dead_letters.html.j2",
        {"items": items, "next_cursor": next_cursor,
         "done": "Given back to the relay: it tries again now." if done == "retried" else ""},
    )  # fmt: skip


@router.post("/dead-letters/{delivery_id:int}/retry")
async def retry(request: Request, delivery_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    require_admin(caller_of(me))
    await retry_dead_letter(uow.session, delivery_id)
    await uow.commit()
    return back_to(request, "/dead-letters", "retried")


@router.get("/keys", response_class=HTMLResponse)
async def keys_page(request: Request, me: Me, uow: Uow) -> Response:
    require_admin(caller_of(me))
    return await _keys_page(request, uow, new_key=None)


async def _keys_page(request: Request, uow: Uow, new_key: str | None) -> Response:
    agents = list(await uow.agents.list(active_only=True))
    return templates(request).page(
        request,
        "keys.html.j2",
        {"keys": await keys.list_keys(uow.session), "agents": agents, "new_key": new_key},
    )


@router.post("/keys", response_class=HTMLResponse)
async def new_key(request: Request, me: Me, uow: Uow) -> Response:
    """The secret is shown on this answer only, never again."""
    form = await form_of(request, me)
    require_admin(caller_of(me))
    role = form.get("role", "")
    agent = form.get("agent_id", "")
    if role == "agent" and not agent.isdigit():
        raise InvalidInput("an agent key needs the agent it speaks for")
    created = await keys.create_key(
        uow.session, name=form.get("name", ""), role=role,
        agent_id=int(agent) if role == "agent" else None,
    )  # fmt: skip
    await uow.commit()
    return await _keys_page(request, uow, new_key=created.key)


@router.post("/keys/{key_id:int}/revoke")
async def revoke(request: Request, key_id: int, me: Me, uow: Uow) -> Response:
    await form_of(request, me)
    require_admin(caller_of(me))
    await keys.revoke_key(uow.session, key_id)
    await uow.commit()
    return back_to(request, "/keys")
