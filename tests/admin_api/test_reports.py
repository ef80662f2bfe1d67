"""Reports per agent, per category and priority, and per day, as JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from core import services
from core.lifecycle import Status
from core.model import Priority, utcnow
from core.policy import SlaPolicy
from tests.admin_api.conftest import Api, assert_problem


async def _worked_ticket(api: Api, agent: int, opened_ago: timedelta, answer_after: timedelta,
                         resolve_after: timedelta, score: int | None) -> int:  # fmt: skip
    opened = utcnow() - opened_ago
    ticket = await api.ticket(category="billing", priority=Priority.HIGH, now=opened)
    async with api.db.uow() as uow:
        await services.add_agent_reply(uow, ticket, agent, "Hello", now=opened + answer_after)
        await services.change_status(uow, ticket, Status.RESOLVED, now=opened + resolve_after)
        if score is not None:
            await services.rate_ticket(uow, ticket, score, now=opened + resolve_after)
        await uow.commit()
    return ticket


async def test_the_agent_report_measures_response_resolution_and_csat(api: Api) -> None:
    grace = await api.agent("Grace")
    alan = await api.agent("Alan")
    await _worked_ticket(api, grace, timedelta(days=2), timedelta(minutes=10),
                         timedelta(hours=2), 5)  # fmt: skip
    await _worked_ticket(api, grace, timedelta(days=1), timedelta(minutes=30),
                         timedelta(hours=4), 3)  # fmt: skip
    await api.ticket(assignee=grace)
    report = (await api.get("/reports/agents")).json()
    rows = {r["agent_id"]: r for r in report["rows"]}
    assert rows[grace]["open"] == 1 and rows[grace]["resolved"] == 2
    assert round(rows[grace]["mean_first_response_seconds"]) == 20 * 60
    assert round(rows[grace]["mean_resolution_seconds"]) == 3 * 3600
    assert rows[grace]["csat"] == 4.0 and rows[grace]["csat_responses"] == 2
    assert rows[alan] == {"agent_id": alan, "name": "Alan", "open": 0, "resolved": 0,
                          "mean_first_response_seconds": None, "mean_resolution_seconds": None,
                          "csat": None, "csat_responses": 0}  # fmt: skip
    recent = (await api.get("/reports/agents", params={
        "since": (utcnow() - timedelta(hours=30)).isoformat()})).json()  # fmt: skip
    assert {r["agent_id"]: r["resolved"] for r in recent["rows"]}[grace] == 1


async def test_the_category_and_daily_reports_count_opened_and_resolved(api: Api) -> None:
    grace = await api.agent("Grace")
    await _worked_ticket(api, grace, timedelta(days=3), timedelta(minutes=5),
                         timedelta(days=1), None)  # fmt: skip
    await api.ticket(category="telecom")
    categories = (await api.get("/reports/categories")).json()["rows"]
    assert {(r["category"], r["priority"], r["opened"], r["resolved"], r["open"])
            for r in categories} == {("billing", "high", 1, 1, 0),
                                     ("telecom", "normal", 1, 0, 1)}  # fmt: skip
    assert all(r["sla_missed"] == 0 for r in categories)  # neither had due times
    daily = (await api.get("/reports/daily")).json()["rows"]
    assert sum(r["opened"] for r in daily) == 2 and sum(r["resolved"] for r in daily) == 1
    today = utcnow().date().isoformat()
    assert {"day": today, "opened": 1, "resolved": 0} in daily


async def test_the_category_report_counts_missed_slas_and_ratings(api: Api) -> None:
    sla = SlaPolicy.from_hours({"high": (1, 8)})
    opened = utcnow() - timedelta(days=2)
    late = await api.ticket(category="billing", priority=Priority.HIGH, now=opened, sla=sla)
    on_time = await api.ticket(category="billing", priority=Priority.HIGH, now=opened, sla=sla)
    grace = await api.agent("Grace")
    async with api.db.uow() as uow:
        for ticket, after in ((late, timedelta(hours=20)), (on_time, timedelta(minutes=20))):
            await services.add_agent_reply(uow, ticket, grace, "Hello", now=opened + after)
            await services.change_status(uow, ticket, Status.RESOLVED, now=opened + after)
            await services.rate_ticket(uow, ticket, 2 if ticket == late else 5,
                                       now=opened + after)  # fmt: skip
        await uow.commit()
    rows = (await api.get("/reports/categories")).json()["rows"]
    assert [(r["opened"], r["sla_missed"], r["csat"], r["csat_responses"]) for r in rows] == [
        (2, 1, 3.5, 2)
    ]


async def test_reports_come_as_csv_when_asked(api: Api) -> None:
    await api.ticket(category="telecom")
    by_param = await api.get("/reports/daily", params={"format": "csv"})
    by_accept = await api.get("/reports/daily", headers={**api.admin, "Accept": "text/csv"})
    for response in (by_param, by_accept):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert rows == [{"day": utcnow().date().isoformat(), "opened": "1", "resolved": "0"}]
    agents = await api.get("/reports/agents", params={"format": "csv"})
    assert agents.text.splitlines()[0].startswith("agent_id,name,open,resolved")
    json_again = await api.get("/reports/categories", params={"format": "json"})
    assert json_again.json()["rows"][0]["category"] == "telecom"


async def test_a_report_period_must_run_forwards(api: Api) -> None:
    now = utcnow()
    backwards = {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}
    assert_problem(await api.get("/reports/daily", params=backwards), 422, "invalid_period")


async def test_an_empty_report_period_gives_an_empty_report(api: Api) -> None:
    await api.ticket()
    now = utcnow().isoformat()
    for report in ("agents", "categories", "daily"):
        response = await api.get(f"/reports/{report}", params={"since": now, "until": now})
        assert response.status_code == 200, response.text
        assert all(not row.get("opened") and not row.get("resolved")
                   for row in response.json()["rows"])  # fmt: skip
