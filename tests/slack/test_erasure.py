"""The Slack desk's copies of an erased customer's words: rewritten through the relay."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack import SlackApi
from core import services
from core.lifecycle import Status
from core.model import Channel
from tests.slack.conftest import AGENT_USER, BILLING, Desk

SECRET = "My secret account number is 12345678"


async def _thread_texts(desk: Desk, thread_ts: str) -> list[tuple[str, str]]:
    """(author, everything shown) of each message of the thread, root first."""
    return [
        (str(m.get("bot_id") or m.get("user")), f"{m.get('text')} {m.get('blocks', '')}")
        for (channel, ts), m in sorted(desk.fake.messages.items())
        if channel == BILLING and thread_ts in (ts, m.get("thread_ts"))
    ]


async def test_erasure_rewrites_every_copy_the_app_posted_in_the_thread(desk: Desk) -> None:
    ticket = await desk.open_ticket(text=SECRET)
    agent = await desk.add_agent()
    await desk.drain()
    assert ticket.id is not None and agent.id is not None
    async with desk.db.uow() as uow:
        await services.add_customer_message(
            uow, ticket.id, "Call me on +44 7700 900123", channel=Channel.TELEGRAM
        )
        await services.add_internal_note(uow, ticket.id, "Maria sounded upset", channel=Channel.API)
        await services.assign_ticket(uow, ticket.id, agent.id)
        await uow.commit()
    await desk.drain()
    thread_ts = await desk.thread_ts(ticket.id)
    typed = desk.fake.add_message(BILLING, "Looking into it", user=AGENT_USER, thread_ts=thread_ts)
    shown = " ".join(text for _, text in await _thread_texts(desk, thread_ts))
    assert "Maria" in shown and "12345678" in shown and "900123" in shown

    async with desk.db.uow() as uow:
        await services.erase_customer(uow, ticket.customer_id)
        await uow.commit()
    await desk.drain()

    thread = await _thread_texts(desk, thread_ts)
    shown = " ".join(text for _, text in thread)
    for personal in ("Maria", "12345678", "900123", "upset", "maria@example.test"):
        assert personal not in shown
    assert "(erased)" in thread[0][1] and Status.CLOSED.value in thread[0][1]
    replies = [text for author, text in thread[1:] if author == desk.fake.bot_id]
    *rewritten, note = replies
    assert rewritten and all("Erased at the customer's request" in text for text in rewritten)
    # An agent's own message is theirs: a bot token can neither edit nor delete it, so it is
    # left as typed, and the thread says so.
    assert desk.fake.messages[(BILLING, typed["ts"])]["text"] == "Looking into it"
    assert "1 message typed in this thread by agents may quote them" in note
    assert "please delete it by hand" in note
    desk.fake.assert_no_violations()


async def test_with_an_admin_token_agents_messages_and_files_are_deleted(desk: Desk) -> None:
    ticket = await desk.open_ticket(text=SECRET)
    await desk.drain()
    assert ticket.id is not None
    thread_ts = await desk.thread_ts(ticket.id)
    shared = desk.fake.add_file("statement.pdf", b"%PDF-1.4 Maria", "application/pdf")
    with_file = desk.fake.add_message(
        BILLING, "Maria's statement", user=AGENT_USER, thread_ts=thread_ts, files=[shared]
    )
    other = desk.fake.add_message(BILLING, "Refunded Maria", user="U0AGENT02", thread_ts=thread_ts)
    token = desk.fake.add_user_token("U0ADMIN01", admin=True)
    client = AsyncWebClient(token=token, base_url=f"{desk.fake.url}/api/")
    desk.slack.desk.eraser = SlackApi(client, interval=0.0)

    async with desk.db.uow() as uow:
        await services.erase_customer(uow, ticket.customer_id)
        await uow.commit()
    await desk.drain()

    for typed in (with_file, other):
        assert (BILLING, typed["ts"]) not in desk.fake.messages
    assert desk.fake.files == {}
    shown = " ".join(text for _, text in await _thread_texts(desk, thread_ts))
    assert "Maria" not in shown and "by hand" not in shown
    desk.fake.assert_no_violations()


async def test_erasing_twice_rewrites_nothing_more(desk: Desk) -> None:
    ticket = await desk.open_ticket(text=SECRET)
    await desk.drain()
    async with desk.db.uow() as uow:
        await services.erase_customer(uow, ticket.customer_id)
        await uow.commit()
    await desk.drain()
    updates = len(desk.fake.calls_to("chat.update"))
    async with desk.db.uow() as uow:
        await services.erase_customer(uow, ticket.customer_id)
        await uow.commit()
    await desk.drain()
    # The root card again (idempotent), no thread message twice.
    assert len(desk.fake.calls_to("chat.update")) == updates + 1
