"""Inbound: signed requests posted to an app serving `slack_router`, processed by real bolt."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.db import tables as t
from core.lifecycle import Status
from core.model import Author, Channel, Message, Priority
from tests.slack.conftest import AGENT_USER, BILLING, Desk, eventually


async def _ticket_with_thread(desk: Desk) -> tuple[int, str]:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    return ticket.id, await desk.thread_ts(ticket.id)


async def _messages(desk: Desk, ticket_id: int) -> list[tuple[Author, str, str | None]]:
    async with desk.db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [
        (m.author, m.body, m.external_id)
        for m in timeline
        if isinstance(m, Message) and m.author in (Author.AGENT, Author.NOTE)
    ]


async def _ticket(desk: Desk, ticket_id: int):
    async with desk.db.uow() as uow:
        return await uow.tickets.get(ticket_id)


async def test_url_verification_is_answered(desk: Desk) -> None:
    answer = await desk.event(desk.events.url_verification("abc123"))
    assert answer.status_code == 200 and answer.json() == {"challenge": "abc123"}


@pytest.mark.parametrize("forgery", [{"secret": "wrong"}, {"age": 600}], ids=["signature", "stale"])
async def test_forged_or_stale_requests_are_refused(desk: Desk, forgery: dict[str, object]) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    body = desk.events.thread_reply(BILLING, thread_ts, "hello")
    answer = await desk.event(body, **forgery)
    assert answer.status_code == 401
    assert await _messages(desk, ticket_id) == []


async def test_agent_thread_reply_goes_to_the_customer(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    agent = await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "We refunded the second charge")
    answer = await desk.event(envelope)
    assert answer.status_code == 200
    ts = envelope["event"]["ts"]
    found = await eventually(lambda: _messages(desk, ticket_id))
    assert found == [(Author.AGENT, "We refunded the second charge", f"{BILLING}:{ts}")]
    assert "AgentReplied" in await desk.outbox_types()
    ticket = await _ticket(desk, ticket_id)
    assert ticket.assignee_id == agent.id and ticket.status == Status.OPEN


async def test_note_prefix_keeps_a_thread_reply_internal(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    await desk.event(desk.events.thread_reply(BILLING, thread_ts, "Note: card issuer says fraud"))
    found = await eventually(lambda: _messages(desk, ticket_id))
    assert found[0][:2] == (Author.NOTE, "card issuer says fraud")
    assert "AgentReplied" not in await desk.outbox_types()
    assert "NoteAdded" in await desk.outbox_types()


async def test_retried_event_is_processed_once(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "Once only")
    await desk.event(envelope)
    await eventually(lambda: _messages(desk, ticket_id))
    key = f"{BILLING}:{envelope['event']['ts']}"
    async with desk.db.uow() as uow:
        await eventually(lambda: uow.inbox.status_of("slack", key))
    for retry in (1, 2):
        answer = await desk.event(envelope, retry_num=retry)
        assert answer.status_code == 200
    assert len(await _messages(desk, ticket_id)) == 1


async def test_retry_of_an_unfinished_delivery_is_processed(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "Lost the first time")
    key = f"{BILLING}:{envelope['event']['ts']}"
    async with desk.db.uow() as uow:  # acked once, then the process died before the work
        await uow.inbox.record("slack", key, payload=envelope)
        await uow.commit()
    await desk.event(envelope, retry_num=1)
    assert await eventually(lambda: _messages(desk, ticket_id))


async def test_a_thread_reply_and_its_done_mark_commit_together(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply and the mark that its delivery is done are one transaction: when the mark
    cannot be written, the reply is not stored either, and Slack's retry stores it once."""
    from core.db.inbox import SqlInboxRecords

    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "All or nothing")
    key = f"{BILLING}:{envelope['event']['ts']}"
    mark = SqlInboxRecords.mark

    async def broken_mark(self: SqlInboxRecords, source: str, key: str, *args: object) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(SqlInboxRecords, "mark", broken_mark)
    await desk.event(envelope)
    i = t.inbox.c

    async def let_go() -> bool:  # the failed attempt gave its claim back
        async with desk.db.engine.connect() as conn:
            row = (await conn.execute(select(i.claimed_until).where(i.key == key))).one()
        return row.claimed_until is None

    await eventually(let_go)
    assert await _messages(desk, ticket_id) == []  # nothing half-done
    monkeypatch.setattr(SqlInboxRecords, "mark", mark)
    await desk.event(envelope, retry_num=1)
    assert await eventually(lambda: _messages(desk, ticket_id)) == [
        (Author.AGENT, "All or nothing", key)
    ]
    async with desk.db.uow() as uow:
        assert await uow.inbox.status_of("slack", key) == "done"


async def test_pending_deliveries_are_replayed_after_a_crash(desk: Desk) -> None:
    from datetime import timedelta

    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "Replayed")
    async with desk.db.uow() as uow:
        await uow.inbox.record("slack", f"{BILLING}:{envelope['event']['ts']}", envelope)
        await uow.commit()
    assert await desk.slack.inbound.replay_pending(older_than=timedelta(0)) == 1
    assert await eventually(lambda: _messages(desk, ticket_id))


async def test_own_and_other_bot_messages_never_loop(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent(slack="U0BOT0001", email="bot@example.test")  # even if linked
    own = desk.events.bot_message(BILLING, "CR-1001 opened")
    own["event"]["thread_ts"] = thread_ts
    other = desk.events.bot_message(BILLING, "another bot", bot_id="B0OTHER")
    other["event"]["thread_ts"] = thread_ts
    by_bot_user = desk.events.thread_reply(BILLING, thread_ts, "echo", user="U0BOT0001")
    for envelope in (own, other, by_bot_user):
        assert (await desk.event(envelope)).status_code == 200
    posts_before = len(desk.fake.posted())
    await desk.event(desk.events.thread_reply(BILLING, thread_ts, "a real one"), retry_num=None)
    await eventually(lambda: desk.fake.calls_to("chat.postEphemeral"))  # unknown agent U0AGENT01
    assert await _messages(desk, ticket_id) == []
    assert len(desk.fake.posted()) == posts_before


async def test_non_agent_gets_an_ephemeral_refusal(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    desk.fake.add_user("U0STRANGER", email="someone@else.test")
    await desk.event(desk.events.thread_reply(BILLING, thread_ts, "hi", user="U0STRANGER"))
    [refusal] = await eventually(lambda: desk.fake.calls_to("chat.postEphemeral"))
    assert (
        refusal.params["user"] == "U0STRANGER" and "Only Careline agents" in refusal.params["text"]
    )
    assert await _messages(desk, ticket_id) == []
    desk.fake.assert_no_violations()


async def test_first_claim_links_the_agent_by_email(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    agent = await desk.add_agent(slack=None, email="ana@example.test")
    desk.fake.add_user("U0NEWANA", email="Ana@example.test", name="Ana")
    reference = f"CR-{ticket_id + 1000}"
    payload = desk.events.block_action(
        "ticket_claim", reference, user="U0NEWANA", channel=BILLING, message_ts=thread_ts
    )
    assert (await desk.action(payload)).status_code == 200
    ticket = await eventually(
        lambda: _assigned(desk, ticket_id),
    )
    assert ticket.assignee_id == agent.id
    async with desk.db.uow() as uow:
        linked = await uow.agents.get(agent.id or 0)
    assert linked is not None and linked.slack_user_id == "U0NEWANA"


async def _assigned(desk: Desk, ticket_id: int):
    ticket = await _ticket(desk, ticket_id)
    return ticket if ticket.assignee_id is not None else None


async def test_buttons_move_the_ticket(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    other = await desk.add_agent("Ben", "ben@example.test", "U0BEN0001")
    reference = f"CR-{ticket_id + 1000}"

    def action(action_id: str, **extra: object) -> dict[str, object]:
        payload = desk.events.block_action(
            action_id, reference, channel=BILLING, message_ts=thread_ts
        )
        payload["actions"][0].update(extra)
        return payload

    assign = action("ticket_assign", type="users_select", selected_user="U0BEN0001")
    del assign["actions"][0]["value"]  # type: ignore[index]
    assign["actions"][0]["block_id"] = f"ticket:{reference}"  # type: ignore[index]
    await desk.action(assign)
    assert (await eventually(lambda: _assigned(desk, ticket_id))).assignee_id == other.id

    priority = action("ticket_priority", type="static_select")
    priority["actions"][0]["selected_option"] = {"value": f"{reference}:urgent"}  # type: ignore[index]
    await desk.action(priority)
    assert await eventually(lambda: _has(desk, ticket_id, priority=Priority.URGENT))

    await desk.action(action("ticket_resolve"))
    assert await eventually(lambda: _has(desk, ticket_id, status=Status.RESOLVED))
    await desk.action(action("ticket_reopen"))
    assert await eventually(lambda: _has(desk, ticket_id, status=Status.OPEN))
    await desk.action(action("ticket_close"))
    assert await eventually(lambda: _has(desk, ticket_id, status=Status.CLOSED))

    await desk.action(action("ticket_reopen"))  # illegal now: told, not crashed
    [told] = await eventually(lambda: desk.fake.calls_to("chat.postEphemeral"))
    assert reference in told.params["text"]
    desk.fake.assert_no_violations()


async def _has(desk: Desk, ticket_id: int, **wanted: object) -> bool:
    ticket = await _ticket(desk, ticket_id)
    return all(getattr(ticket, k) == v for k, v in wanted.items())


async def test_slash_command_status_assign_note_resolve_and_help(desk: Desk) -> None:
    ticket_id, _ = await _ticket_with_thread(desk)
    await desk.add_agent()
    ben = await desk.add_agent("Ben", "ben@example.test", "U0BEN0001")
    ref = f"CR-{ticket_id + 1000}"

    async def run(text: str, user: str = AGENT_USER) -> str:
        before = len(desk.fake.calls_to("chat.postEphemeral"))
        assert (await desk.command(text, user)).status_code == 200
        calls = await eventually(lambda: desk.fake.calls_to("chat.postEphemeral")[before:] or None)
        return str(calls[0].params["text"])

    assert ref in await run(f"status {ref}")
    assert "Assigned to <@U0BEN0001>" in await run(f"assign {ref} <@U0BEN0001|ben>")
    assert (await _ticket(desk, ticket_id)).assignee_id == ben.id
    assert "Note added" in await run(f"note {ref} customer is VIP")
    assert (await _messages(desk, ticket_id))[-1][:2] == (Author.NOTE, "customer is VIP")
    assert "resolved" in await run(f"resolve {ref}")
    assert "/careline" in await run("help")
    assert "needs a ticket reference" in await run("resolve")
    assert "Only Careline agents" in await run(f"resolve {ref}", user="U0NOBODY1")
    desk.fake.assert_no_violations()


async def test_customer_dm_is_a_turn_of_the_dialog_engine(desk: Desk) -> None:
    desk.fake.add_user("U0CUSTOM1", name="Maria")
    envelope = desk.events.direct_message("my card was charged twice")
    await desk.event(envelope)
    [said] = await eventually(lambda: desk.engine.turns)
    assert said.channel == Channel.SLACK and said.chat_id == "D0CUSTOM1"
    assert said.user_id == "U0CUSTOM1" and said.display_name == "Maria"
    assert said.message_id == f"D0CUSTOM1:{envelope['event']['ts']}"
    [reply] = await eventually(lambda: desk.fake.posted("D0CUSTOM1"))
    buttons = [e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["value"] for b in buttons] == ["billing", "other"]
    assert "1. Billing" in reply["text"]  # text first: it reads well without buttons

    press = desk.events.block_action("choice:0", "billing", user="U0CUSTOM1", channel="D0CUSTOM1")
    await desk.action(press)
    await eventually(lambda: len(desk.engine.turns) == 2)
    assert desk.engine.turns[1].choice == "billing"
    desk.fake.assert_no_violations()


async def test_inbox_keeps_the_event_payload(desk: Desk) -> None:
    envelope = desk.events.app_mention(BILLING, "status CR-1001")
    await desk.event(envelope)
    async with desk.db.uow() as uow:
        rows = (await uow.session.execute(select(t.inbox.c.key, t.inbox.c.payload))).all()
    assert [r.key for r in rows] == [envelope["event_id"]]
    assert json.loads(json.dumps(rows[0].payload))["event_id"] == envelope["event_id"]
