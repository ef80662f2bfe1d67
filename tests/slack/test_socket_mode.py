"""Socket Mode: the real slack_sdk aiohttp Socket Mode client (what bolt's
`AsyncSocketModeHandler` runs) connected by `start_socket_mode` to a local WebSocket server that
plays Slack's side: `hello`, then envelopes (`events_api`, `slash_commands`, `interactive`,
`disconnect`), each of which our app must ACK with its `envelope_id`.

Envelope shapes: https://docs.slack.dev/apis/events-api/using-socket-mode/
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from slack_sdk.errors import SlackApiError

from bots.slack import start_socket_mode
from core.model import Author, Message
from tests.slack.conftest import AGENT_USER, BILLING, Desk, eventually

APP_TOKEN = "xapp-1-A0CARELINE-1-socketsecret"


class FakeSocketMode:
    """Slack's Socket Mode WebSocket endpoint on 127.0.0.1 (an ephemeral port).

    Greets every connection with `hello`, sends the envelopes the test asks for on the newest
    connection and keeps every ACK by envelope id.
    """

    def __init__(self) -> None:
        self.connections: list[web.WebSocketResponse] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.received: list[Any] = []  # every frame the client sent, in order
        self._ids = itertools.count(1)
        self._connected = asyncio.Condition()
        self._acked = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/link/", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/link/?ticket=socket-ticket&app_id=A0CARELINE"

    async def stop(self) -> None:
        for ws in self.connections:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.connections) + 1,
                "debug_info": {
                    "host": "applink-test",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": "A0CARELINE"},
            }
        )
        async with self._connected:
            self.connections.append(ws)
            self._connected.notify_all()
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            answer = json.loads(frame.data)
            self.received.append(answer)
            if "envelope_id" in answer:
                async with self._acked:
                    self.acks[answer["envelope_id"]] = answer
                    self._acked.notify_all()
        return ws

    async def connected(self, count: int = 1, timeout: float = 5.0) -> None:
        async with self._connected:
            await asyncio.wait_for(
                self._connected.wait_for(lambda: len(self.connections) >= count), timeout
            )

    async def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send one envelope on the newest connection; returns its envelope id."""
        envelope_id = f"env-{next(self._ids):04d}-5d8f"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        await self.connected()
        await self.connections[-1].send_json(envelope)
        return envelope_id

    async def ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's ACK of one envelope (waits for it)."""
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.acks), timeout)
        return self.acks[envelope_id]

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the client to move to a new connection, as Slack does every few hours."""
        await self.connections[-1].send_json(
            {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-test"}}
        )


@pytest.fixture
async def socket(desk: Desk) -> AsyncIterator[FakeSocketMode]:
    server = FakeSocketMode()
    await server.start()
    desk.fake.socket_url = server.url
    handler = await start_socket_mode(desk.slack.inbound, APP_TOKEN)
    try:
        await server.connected()
        yield server
    finally:
        await handler.close_async()
        await server.stop()


async def _ticket_with_thread(desk: Desk) -> tuple[int, str]:
    ticket = await desk.open_ticket()
    await desk.drain()
    assert ticket.id is not None
    return ticket.id, await desk.thread_ts(ticket.id)


async def _agent_messages(desk: Desk, ticket_id: int) -> list[tuple[Author, str, str | None]]:
    async with desk.db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [
        (m.author, m.body, m.external_id)
        for m in timeline
        if isinstance(m, Message) and m.author in (Author.AGENT, Author.NOTE)
    ]


async def _settle(desk: Desk) -> None:
    """Give a (wrongly) repeated listener the time to show its effect before counting effects."""
    await asyncio.sleep(0.3)


async def test_connection_is_opened_with_the_app_token(desk: Desk, socket: FakeSocketMode) -> None:
    [opened] = desk.fake.calls_to("apps.connections.open")
    assert opened.params.get("_ok")
    assert len(socket.connections) == 1
    desk.fake.assert_no_violations()


async def test_agent_thread_reply_over_the_socket_is_acked_and_reaches_the_ticket(
    desk: Desk, socket: FakeSocketMode
) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "We refunded the second charge")
    envelope_id = await socket.send("events_api", envelope)

    assert await socket.ack(envelope_id) == {"envelope_id": envelope_id}
    found = await eventually(lambda: _agent_messages(desk, ticket_id))
    ts = envelope["event"]["ts"]
    assert found == [(Author.AGENT, "We refunded the second charge", f"{BILLING}:{ts}")]
    assert "AgentReplied" in await desk.outbox_types()
    desk.fake.assert_no_violations()


async def test_customer_dm_over_the_socket_reaches_the_dialog_engine(
    desk: Desk, socket: FakeSocketMode
) -> None:
    desk.fake.add_user("U0CUSTOM1", name="Maria")
    envelope = desk.events.direct_message("my card was charged twice")
    envelope_id = await socket.send("events_api", envelope)

    assert await socket.ack(envelope_id) == {"envelope_id": envelope_id}
    [said] = await eventually(lambda: desk.engine.turns)
    assert said.text == "my card was charged twice" and said.chat_id == "D0CUSTOM1"
    assert said.message_id == f"D0CUSTOM1:{envelope['event']['ts']}"
    [reply] = await eventually(lambda: desk.fake.posted("D0CUSTOM1"))
    assert "1. Billing" in reply["text"]
    desk.fake.assert_no_violations()


async def test_redelivered_envelope_is_acked_and_has_one_effect(
    desk: Desk, socket: FakeSocketMode
) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    envelope = desk.events.thread_reply(BILLING, thread_ts, "Refund is on its way")
    first = await socket.send("events_api", envelope)
    await socket.ack(first)
    await eventually(lambda: _agent_messages(desk, ticket_id))

    # Slack redelivers the same event (same event_id) in a new envelope when it missed the ACK.
    again = await socket.send("events_api", envelope, retry_attempt=1, retry_reason="timeout")
    assert await socket.ack(again) == {"envelope_id": again}
    await _settle(desk)
    assert len(await _agent_messages(desk, ticket_id)) == 1
    assert (await desk.outbox_types()).count("AgentReplied") == 1


async def test_redelivery_racing_the_first_delivery_has_one_effect(
    desk: Desk, socket: FakeSocketMode
) -> None:
    desk.fake.add_user("U0CUSTOM1", name="Maria")
    envelope = desk.events.direct_message("where is my parcel?")
    first = await socket.send("events_api", envelope)
    again = await socket.send("events_api", envelope, retry_attempt=1, retry_reason="timeout")
    await socket.ack(first)
    await socket.ack(again)
    await eventually(lambda: desk.fake.posted("D0CUSTOM1"))
    await _settle(desk)
    assert len(desk.engine.turns) == 1
    assert len(desk.fake.posted("D0CUSTOM1")) == 1


async def test_slash_command_over_the_socket_is_acked_and_answered(
    desk: Desk, socket: FakeSocketMode
) -> None:
    ticket_id, _ = await _ticket_with_thread(desk)
    agent = await desk.add_agent()
    reference = f"CR-{ticket_id + 1000}"
    form = desk.events.slash_command("/careline", f"claim {reference}", user=AGENT_USER)
    # Over the socket the command's form fields arrive as a JSON object.
    payload = dict(urllib.parse.parse_qsl(form.decode()))
    envelope_id = await socket.send("slash_commands", payload)

    assert (await socket.ack(envelope_id))["envelope_id"] == envelope_id
    [told] = await eventually(lambda: desk.fake.calls_to("chat.postEphemeral"))
    assert "It's yours" in told.params["text"] and told.params["user"] == AGENT_USER
    async with desk.db.uow() as uow:
        ticket = await uow.tickets.get(ticket_id)
    assert ticket is not None and ticket.assignee_id == agent.id
    desk.fake.assert_no_violations()


async def test_button_press_over_the_socket_is_acked_and_moves_the_ticket(
    desk: Desk, socket: FakeSocketMode
) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    agent = await desk.add_agent()
    press = desk.events.block_action(
        "ticket_claim", f"CR-{ticket_id + 1000}", channel=BILLING, message_ts=thread_ts
    )
    envelope_id = await socket.send("interactive", press)

    assert (await socket.ack(envelope_id))["envelope_id"] == envelope_id

    async def assigned() -> bool:
        async with desk.db.uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
        return ticket is not None and ticket.assignee_id == agent.id

    assert await eventually(assigned)
    desk.fake.assert_no_violations()


async def test_refresh_disconnect_moves_to_a_new_connection_and_events_keep_flowing(
    desk: Desk, socket: FakeSocketMode
) -> None:
    await socket.disconnect()
    await socket.connected(count=2)
    assert len(desk.fake.calls_to("apps.connections.open")) == 2

    desk.fake.add_user("U0CUSTOM1", name="Maria")
    envelope_id = await socket.send("events_api", desk.events.direct_message("hello again"))
    assert await socket.ack(envelope_id) == {"envelope_id": envelope_id}
    await eventually(lambda: desk.engine.turns)


async def test_a_bot_token_in_place_of_the_app_token_fails_at_start(desk: Desk) -> None:
    desk.fake.socket_url = "ws://127.0.0.1:9/never-used"
    with pytest.raises(SlackApiError) as refused:
        await asyncio.wait_for(start_socket_mode(desk.slack.inbound, "xoxb-not-an-app-token"), 5)
    assert refused.value.response["error"] == "not_allowed_token_type"
