"""Reports per agent, per category and priority, and per day; JSON or CSV.

CSV when asked with `?format=csv` or `Accept: text/csv`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from admin_api.deps import AdminDep, UowDep
from admin_api.schemas import (
    AgentReport,
    AgentReportRow,
    CategoryReport,
    CategoryReportRow,
    DailyReport,
    DailyReportRow,
    UtcDatetime,
)
from core.db.database import Session
from core.db.queries import agent_report, category_report, daily_report
from core.errors import InvalidInput
from core.model import utcnow

router = APIRouter(prefix="/reports", tags=["reports"])

DEFAULT_PERIOD = timedelta(days=30)
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
Since = Annotated[UtcDatetime | None, Query(description="Start (inclusive); 30 days ago.")]
Until = Annotated[UtcDatetime | None, Query(description="End (exclusive); now.")]
Format = Annotated[Literal["json", "csv"] | None, Query(description="Or `Accept: text/csv`.")]
Query_ = Callable[..., Awaitable[list[dict[str, Any]]]]


class InvalidPeriod(InvalidInput):
    code = "invalid_period"


def _period(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    until = until or utcnow()
    since = since or until - DEFAULT_PERIOD
    if since > until:  # `since == until` is an empty period: a report with nothing in it
        raise InvalidPeriod("`since` must not be after `until`")
    return since, until


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


def _csv(rows: list[BaseModel], row_model: type[BaseModel], name: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row_model.model_fields))
    writer.writeheader()
    for row in rows:
        writer.writerow(row.model_dump(mode="json"))
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


async def _report(
    request: Request,
    session: Session,
    query: Query_,
    row_model: type[BaseModel],
    report_model: type[BaseModel],
    name: str,
    since: datetime | None,
    until: datetime | None,
    fmt: str | None,
) -> Any:
    start, end = _period(since, until)
    postgres = session.get_bind().dialect.name == "postgresql"
    rows = [
        row_model.model_validate(r) for r in await query(session, start, end, postgres=postgres)
    ]
    if _wants_csv(request, fmt):
        return _csv(rows, row_model, name)
    return report_model.model_validate({"since": start, "until": end, "rows": rows})


@router.get("/agents", response_model=AgentReport, responses=CSV_RESPONSE,
            summary="Per agent: open, resolved, response and resolution times, CSAT")  # fmt: skip
async def agents(
    request: Request, _: AdminDep, uow: UowDep, since: Since = None, until: Until = None,
    format: Format = None,
) -> Any:  # fmt: skip
    return await _report(request, uow.session, agent_report, AgentReportRow, AgentReport,
                         "agents", since, until, format)  # fmt: skip


@router.get("/categories", response_model=CategoryReport, responses=CSV_RESPONSE,
            summary="Per category and priority: opened, resolved, open, resolve time")  # fmt: skip
async def categories(
    request: Request, _: AdminDep, uow: UowDep, since: Since = None, until: Until = None,
    format: Format = None,
) -> Any:  # fmt: skip
    return await _report(request, uow.session, category_report, CategoryReportRow,
                         CategoryReport, "categories", since, until, format)  # fmt: skip


@router.get("/daily", response_model=DailyReport, responses=CSV_RESPONSE,
            summary="Tickets opened and resolved per day (UTC)")  # fmt: skip
async def daily(
    request: Request, _: AdminDep, uow: UowDep, since: Since = None, until: Until = None,
    format: Format = None,
) -> Any:  # fmt: skip
    return await _report(request, uow.session, daily_report, DailyReportRow, DailyReport,
                         "daily", since, until, format)  # fmt: skip
