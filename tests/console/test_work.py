"""Working tickets in the console: the queue, a ticket's page and its actions, saved
replies, who else is on a ticket, and live updates."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
import pytest
from sqlalchemy import select

from core.db import staff
from core.db import tables as t
from core.model import reference_of, utcnow
from tests.console.conftest import Console, Person
from tests.console.test_access import invite


async def events_of(console: Console, ticket_id: int) -> list[str]:
    async with console.db.sessions() as session:
        rows = await session.execute(select(t.outbox.c.event_type, t.outbox.c.payload))
    return [kind for kind, payload in rows if payload.get("ticket_id") == ticket_id]


async def agent_of(console: Console, admin: Person, email: str = "grace@example.com") -> Person:
    return await console.accept(await invite(console, admin, email), name="Grace Hopper")


async def test_the_queue_shows_mine_unassigned_and_all_with_filters(console: Console) -> None:
    admin = await console.first_admin()
    grace = await agent_of(console, admin)
    parcel = await console.ticket("My parcel never came")
    refund = await console.ticket("I want a refund for the broken kettle")
    assert (await grace.post(f"/console/tickets/{parcel}/claim")).status_code == 303
    mine = (await grace.page("/console/?view=mine")).text
    assert f"/console/tickets/{parcel}" in mine and f"/console/tickets/{refund}" not in mine
    unassigned = (await grace.page("/console/?view=unassigned")).text
    assert f"/console/tickets/{refund}" in unassigned and f'/tickets/{parcel}"' not in unassigned
    everything = (await admin.page("/console/?view=all")).text
    assert f"/console/tickets/{parcel}" in everything and f"/console/tickets/{refund}" in everything
    found = (await admin.page("/console/?view=all&q=kettle")).text
    assert f"/console/tickets/{refund}" in found and f'/console/tickets/{parcel}"' not in found
    opened = (await admin.page("/console/?view=all&status=open")).text
    assert f"/console/tickets/{parcel}" in opened and f'/console/tickets/{refund}"' not in opened
    bad = await admin.page("/console/?view=all&status=sideways")
    assert bad.status_code == 422 and "not a status" in bad.text


async def test_a_reply_goes_to_the_customer_and_a_note_does_not(console: Console) -> None:
    admin = await console.first_admin()
    grace = await agent_of(console, admin)
    ticket_id = await console.ticket()
    page = await grace.page(f"/console/tickets/{ticket_id}")
    assert page.status_code == 200 and "My parcel never came" in page.text
    assert "Take this ticket" in page.text
    noted = await grace.post(f"/console/tickets/{ticket_id}/note", body="Courier says Tuesday")
    assert noted.status_code == 303 and noted.headers["location"].endswith("done=noted")
    assert "AgentReplied" not in await events_of(console, ticket_id)
    replied = await grace.post(
        f"/console/tickets/{ticket_id}/reply", body="Your parcel arrives on Tuesday."
    )
    assert replied.status_code == 303
    assert "AgentReplied" in await events_of(console, ticket_id)  # the relay takes it from here
    page = await grace.page(f"/console/tickets/{ticket_id}?done=replied")
    assert "Reply sent" in page.text and "Your parcel arrives on Tuesday." in page.text
    assert "Courier says Tuesday" in page.text and "internal" in page.text
    async with console.db.sessions() as session:
        rows = await session.execute(
            select(t.messages.c.author, t.messages.c.channel, t.tickets.c.assignee_id)
            .join(t.tickets, t.tickets.c.id == t.messages.c.ticket_id)
            .where(t.messages.c.ticket_id == ticket_id, t.messages.c.author != "customer")
        )  # fmt: skip
        written = {(author, channel) for author, channel, assignee in rows if assignee}
    assert written == {("note", "console"), ("agent", "console")}  # the reply claimed it
    resolved = await grace.post(f"/console/tickets/{ticket_id}/status", status="resolved")
    assert resolved.status_code == 303
    wrong = await grace.post(f"/console/tickets/{ticket_id}/status", status="waiting")
    assert wrong.status_code == 409 and "cannot become waiting" in wrong.text


async def test_an_admin_assigns_to_an_agent_the_picker_shows_loads(console: Console) -> None:
    admin = await console.first_admin()
    await agent_of(console, admin)
    ticket_id = await console.ticket()
    page = (await admin.page(f"/console/tickets/{ticket_id}")).text
    assert "Grace Hopper — 0 of 3 open" in page
    async with console.db.sessions() as session:
        agent_id = await session.scalar(select(t.agents.c.id))
    assert (await admin.post(f"/console/tickets/{ticket_id}/assign", agent_id=str(agent_id))
            ).status_code == 303  # fmt: skip
    page = (await admin.page(f"/console/tickets/{ticket_id}")).text
    assert "Grace Hopper — 1 of 3 open" in page
    assert "TicketAssigned" in await events_of(console, ticket_id)


async def test_a_saved_reply_is_filled_for_the_ticket(console: Console) -> None:
    admin = await console.first_admin()
    saved = await admin.post(
        "/console/canned", title="Parcel late",
        body="Hello {customer_name}, about {reference}: your parcel is on its way. {unknown}",
    )  # fmt: skip
    assert saved.status_code == 303
    ticket_id = await console.ticket()
    async with console.db.sessions() as session:
        canned_id = (await staff.canned(session))[0].id
    page = (await admin.page(f"/console/tickets/{ticket_id}?canned={canned_id}")).text
    reference = reference_of(ticket_id)
    assert f"Hello Carla Customer, about {reference}: your parcel is on its way. {{unknown}}" in (
        page.replace("&#39;", "'")
    )


async def test_another_person_on_the_ticket_is_shown(console: Console) -> None:
    admin = await console.first_admin()
    grace = await agent_of(console, admin)
    ticket_id = await console.ticket()
    await admin.page(f"/console/tickets/{ticket_id}")
    page = (await grace.page(f"/console/tickets/{ticket_id}")).text
    assert "Ada Admin is looking at this ticket" in page
    said = await admin.post(f"/console/tickets/{ticket_id}/presence", replying="1")
    assert said.json() == {"others": [{"name": "Grace Hopper", "replying": False}]}
    seen = await grace.post(f"/console/tickets/{ticket_id}/presence", replying="0")
    assert seen.json() == {"others": [{"name": "Ada Admin", "replying": True}]}


async def test_the_live_stream_says_when_a_ticket_changed(console: Console) -> None:
    state = console.app.routes[-1].app.state  # type: ignore[attr-defined]
    state.live_every_seconds, state.live_stream_seconds = 0.05, 2.0
    admin = await console.first_admin()
    ticket_id = await console.ticket()
    await admin.page("/console/")
    lines: list[str] = []

    async def listen() -> None:
        async with admin.client.stream("GET", f"/console/live?ticket={ticket_id}") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                lines.append(line)

    listening = asyncio.create_task(listen())
    await asyncio.sleep(0.5)
    await admin.post(f"/console/tickets/{ticket_id}/note", body="Looking into it")
    await asyncio.wait_for(listening, 10)  # httpx in-process hands the stream over at its end
    assert lines.count("event: changed") == 1, lines
    assert lines.count(": still here") >= 5  # polled, and nothing else changed
    fragment = await admin.page(f"/console/tickets/{ticket_id}/timeline")
    assert "Looking into it" in fragment.text and "<html" not in fragment.text


async def test_pages_need_a_session_and_say_so(console: Console) -> None:
    anonymous = console.client()
    answer = await anonymous.get("/console/tickets/1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=/console/tickets/1"
    page = await anonymous.get("/console/sign-in?next=https://evil.example/")
    assert 'name="next" value="/console/"' in page.text  # never a way off the console
    assert isinstance(page, httpx.Response)


async def test_the_admins_reports_dead_letters_and_keys(console: Console) -> None:
    admin = await console.first_admin()
    grace = await agent_of(console, admin)
    ticket_id = await console.ticket()
    await grace.post(f"/console/tickets/{ticket_id}/reply", body="Here you are")
    await grace.post(f"/console/tickets/{ticket_id}/status", status="resolved")
    report = await admin.page("/console/reports?days=7")
    assert report.status_code == 200
    assert "1 opened" in report.text and "1 resolved" in report.text  # the chart's titles
    assert "Grace Hopper" in report.text and "delivery" in report.text
    assert (await grace.page("/console/reports")).status_code == 403
    # A dead letter is given back to the relay.
    async with console.db.sessions() as session:
        event_id = await session.scalar(select(t.outbox.c.id).limit(1))
        await session.execute(
            t.outbox_deliveries.insert().values(
                event_id=event_id, handler="customer_email", status="dead", attempts=12,
                last_error="SendGrid said 401", updated_at=utcnow(),
            )
        )  # fmt: skip
        await session.commit()
    letters = await admin.page("/console/dead-letters")
    assert "SendGrid said 401" in letters.text
    delivery_id = int(re.search(r"/dead-letters/(\d+)/retry", letters.text).group(1))  # type: ignore[union-attr]
    retried = await admin.post(f"/console/dead-letters/{delivery_id}/retry")
    assert retried.status_code == 303
    assert "Nothing is stuck" in (await admin.page("/console/dead-letters")).text
    # An API key: its secret shown once, then only its prefix.
    made = await admin.post("/console/keys", name="reporting", role="admin")
    secret = re.search(r"clk_[A-Za-z0-9_-]{43}", made.text)
    assert made.status_code == 200 and secret
    listing = (await admin.page("/console/keys")).text
    assert secret.group(0) not in listing and secret.group(0)[:12] in listing


async def test_a_taken_title_is_a_clear_refusal_that_logs_no_values(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    admin = await console.first_admin()
    assert (await admin.post("/console/canned", title="Refund", body="One")).status_code == 303
    again = await admin.post("/console/canned", title="Refund", body="Two")
    assert again.status_code == 409 and "already exists" in again.text
    assert "console conflict POST /canned" in caplog.text
    assert "Refund" not in caplog.text  # the route, never the values
    async with console.db.sessions() as session:
        assert [c.body for c in await staff.canned(session)] == ["One"]
