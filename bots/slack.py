"""Slack: the agents' desk (one thread per ticket) and Slack DMs as a customer channel.

The only module that imports slack_bolt / slack_sdk. Four parts, built once by
:func:`build_slack` in the composition root:

- :class:`SlackApi` — the Web API client with per-channel pacing (about 1 message/s), 429
  ``Retry-After`` honoured, and no blind retry of ``chat.postMessage``: every desk post carries
  a marker (a ``block_id``) and its attempt is recorded first, so after a timeout or a crash the
  next attempt looks for the marker (``conversations.replies`` / ``.history``) before posting.
- :class:`SlackDesk` — outbound relay handlers (open the ticket thread, mirror customer
  messages, update the root message and note every change, announce SLA breaches, confirm or
  report the delivery of an agent's reply).
- :class:`SlackInbound` — the bolt ``AsyncApp``: thread replies, buttons, ``/careline``, DMs.
  Served over HTTP by :func:`slack_router` or over Socket Mode by :func:`start_socket_mode`.
- :class:`SlackChannel` — ``ChatChannel.send`` into a customer's DM.

**The note rule.** In a ticket thread, an agent's reply goes to the customer; a reply that
starts with ``note:`` (any case, e.g. ``Note: checked the logs``) is an internal note and never
leaves Slack. Replies from people who are not Careline agents go nowhere (they get an
ephemeral refusal), and so do edits, deletions and messages of other bots.

**Who is an agent.** A Slack user whose id is linked to an active agent (through the admin
API), or whose ``users.info`` email matches an agent's email on their first desk action (the
id is then linked). Anyone else gets an ephemeral refusal.

**Redeliveries.** Every Events API delivery is recorded in ``inbox`` (source ``slack``) under
``channel:ts`` for messages, else the ``event_id``, before the ack, and claimed there for
``CLAIM_LEASE`` by a conditional UPDATE: one copy at a time does the work, whichever process
(replica) it reached. A retry (``X-Slack-Retry-Num``) of a finished delivery, or one arriving
while another copy holds the claim, is a no-op; of an unfinished, unclaimed one (the first
attempt failed and let go, or its process died and the lease ran out) it runs again: the
services dedupe on ``channel:ts`` and the dialog engine gives a redelivered DM the answer it
remembers. Each answer in a DM is posted under a marker (``answer:<channel:ts>:<n>``), so
when an earlier attempt already posted it (and died before recording the delivery done), the
marker is found in the DM and nothing is posted twice. :meth:`SlackInbound.replay_pending`
re-runs deliveries left pending (at start and every ``REPLAY_EVERY`` seconds), up to
``MAX_ATTEMPTS``. Bolt drops the bot's own events (``bot_id`` / bot user), and the message
listener ignores every other bot too, so nothing loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import parse_qs

from aiohttp import ClientError
from fastapi import APIRouter, Request, Response
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import insert, select
from starlette.types import Message

from bots import slack_blocks as kit
from bots.channels import PermanentFailure, PlugStart, RetryLater, TurnEngine, Unreachable
from bots.relay import Delivery, Handler, Handlers, Skip
from bots.slack_files import SlackFiles
from core import events, jsonguard, services
from core.config import Settings
from core.db import inbox
from core.db import tables as t
from core.db.database import Database, SqlUnitOfWork
from core.errors import DomainError
from core.files import FileLinks
from core.jsonguard import RefusedBody, read_capped
from core.model import Agent, Author, Channel, Priority, Ticket, ticket_id_from_reference, utcnow
from core.ports import FileStore, UnitOfWork
from dialogs.turn import Attachment, Reply, UserSaid

log = logging.getLogger("careline.slack")

INBOX_SOURCE = "slack"
POST_SOURCE = "slack-post"  # attempts of our own posts, recorded before they are made
DELIVERED_REACTION = "white_check_mark"
FAILED_REACTION = "warning"
# What the desk's copies of an erased customer's words become (root cards show the erased ticket).
ERASED_TEXT = ":wastebasket: Erased at the customer's request."
# Told in a thread when agents' own messages there could not be deleted (no admin token).
AGENTS_NOTE = (
    ":warning: This customer's data was erased. {count} typed in this thread by agents may "
    "quote them, and Careline cannot delete messages it did not post (a workspace admin's "
    "token, SLACK_ERASURE_TOKEN, lets it): please delete {them} by hand."
)
# A message that is gone or not ours to edit: nothing of it is left for us to erase.
UNEDITABLE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# Slack errors that mean "this chat is gone for us", not "this message is wrong".
UNREACHABLE_ERRORS = {
    "channel_not_found",
    "is_archived",
    "not_in_channel",
    "user_disabled",
    "account_inactive",
    "cannot_dm_bot",
    "user_not_found",
}
PACED_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})
# How long a delivery's claim holds: far longer than a turn and its paced answers take. A claim
# that outlives it is presumed dead (its process crashed); a redelivery or replay takes over.
CLAIM_LEASE = timedelta(seconds=45)
# Attempts (claims) of one delivery before it is parked for a human.
MAX_ATTEMPTS = 8
# Event types a listener finishes; others are not recorded (nothing would ever finish them).
INBOX_EVENTS = frozenset({"message", "app_mention"})
REPLAY_EVERY = 30.0  # seconds between looks for deliveries left pending
REPLAY_BATCH = 100
_i = t.inbox.c
REFUSAL = "Only Careline agents can work tickets here. Ask an admin to link your Slack account."


# --- Web API -----------------------------------------------------------------------------


class UncertainPost(Exception):
    """chat.postMessage may or may not have posted (timeout, dropped connection)."""


class SlackApi:
    """One ``AsyncWebClient``, paced per channel, honouring 429 and never re-posting blindly."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        db: Database | None = None,
        interval: float = 1.0,
        max_inline_wait: float = 5.0,
    ) -> None:
        self.client = client
        self.db = db
        self.interval = interval
        self.max_inline_wait = max_inline_wait
        self._next_slot: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._identity: dict[str, Any] | None = None

    async def identity(self) -> dict[str, Any]:
        """auth.test, once: team id, bot user id and bot id."""
        if self._identity is None:
            self._identity = dict((await self.call("auth.test")).data)
        return self._identity

    async def team_id(self) -> str:
        return str((await self.identity())["team_id"])

    async def call(self, method: str, **params: Any) -> Any:
        """One Web API call; waits out short 429s, raises RetryLater for long ones."""
        # Slack allows about one message per second per channel; pace what writes messages.
        channel = params.get("channel") if method in PACED_METHODS else None
        for _ in range(3):
            if channel is not None:
                await self._pace(channel)
            try:
                return await self.client.api_call(method, json=_drop_none(params))
            except SlackApiError as error:
                status = error.response.status_code
                if status == 429:
                    wait = _retry_after(error)
                    if channel is not None:
                        self._next_slot[channel] = time.monotonic() + wait
                    if wait > self.max_inline_wait:
                        raise RetryLater(f"Slack rate limit on {method}", wait) from error
                    if channel is None:
                        await asyncio.sleep(wait)
                    continue
                if status >= 500:
                    # Slack answered, so the post is not in flight; a marked post is still
                    # looked for before the next attempt.
                    raise RetryLater(f"Slack {method}: HTTP {status}", 5) from error
                raise
            except (TimeoutError, ClientError) as error:
                if method == "chat.postMessage":
                    raise UncertainPost(f"{method}: {type(error).__name__}") from error
                raise RetryLater(f"Slack {method}: {type(error).__name__}", 5) from error
        raise RetryLater(f"Slack keeps rate-limiting {method}", self.interval * 5)

    async def _pace(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            delay = self._next_slot.get(channel, 0.0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next_slot[channel] = time.monotonic() + self.interval

    async def post(
        self,
        channel: str,
        text: str,
        blocks: list[kit.Block],
        *,
        thread_ts: str | None = None,
        marker: str | None = None,
    ) -> str:
        """Post a message and return its ts; with a marker, at most once whatever happens.

        The attempt is recorded before the call. A later attempt under the same marker first
        looks for the message in Slack; if it cannot tell, it gives up loudly rather than risk
        a double post.
        """
        if marker is not None and self.db is not None and not await self._record_attempt(marker):
            found, checked = await self.find(channel, marker, thread_ts)
            if found is not None:
                await self._finish_attempt(marker, found)
                return found
            if not checked:
                raise PermanentFailure(
                    f"an earlier post to {channel} may have gone through and Slack cannot "
                    "say; not posting again (check the channel, then retry)"
                )
        try:
            answer = await self.call(
                "chat.postMessage",
                channel=channel,
                text=kit.clip(text, 39_000),
                blocks=blocks,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except UncertainPost as error:
            if marker is None:
                # No marker, no way to tell: a second copy is worse than a visible failure.
                raise PermanentFailure(f"{error}; not retried to avoid a double post") from error
            found, _ = await self.find(channel, marker, thread_ts)
            if found is not None:
                await self._finish_attempt(marker, found)
                return found
            raise RetryLater(f"{error}; will check Slack before any new post", 5) from error
        ts = str(answer["ts"])
        if marker is not None:
            await self._finish_attempt(marker, ts)
        return ts

    async def find(
        self, channel: str, marker: str, thread_ts: str | None
    ) -> tuple[str | None, bool]:
        """(ts of our message carrying `marker` or None, whether Slack could be checked)."""
        try:
            if thread_ts is not None:
                answer = await self.call("conversations.replies", ts=thread_ts, channel=channel)
            else:
                answer = await self.call("conversations.history", channel=channel, limit=200)
        except (SlackApiError, RetryLater) as error:
            log.warning("cannot look for an earlier post in %s: %s", channel, error)
            return None, False
        messages = answer.get("messages")
        if not isinstance(messages, list):
            return None, False
        for message in messages:
            if kit.has_marker(message, marker):
                return str(message["ts"]), True
        return None, True

    async def _record_attempt(self, marker: str) -> bool:
        assert self.db is not None
        async with self.db.uow() as uow:
            first = await inbox.record(uow.session, POST_SOURCE, marker)
            await uow.commit()
        return first

    async def _finish_attempt(self, marker: str, ts: str) -> None:
        if self.db is None:
            return
        async with self.db.uow() as uow:
            await inbox.mark(uow.session, POST_SOURCE, marker, "done", error=None)
            await uow.commit()
        log.debug("posted %s as %s", marker, ts)


def _d(uow: SqlUnitOfWork) -> UnitOfWork:
    # The SQL unit of work is a UnitOfWork; mypy cannot see it through the protocol's
    # mutable (hence invariant) repository attributes.
    return cast(UnitOfWork, uow)


def _drop_none(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _retry_after(error: SlackApiError) -> float:
    raw = error.response.headers.get("retry-after") or error.response.headers.get("Retry-After")
    if isinstance(raw, list):
        raw = raw[0] if raw else None
    try:
        return max(float(raw), 0.0) if raw is not None else 1.0
    except ValueError:
        return 1.0


def _slack_error(error: SlackApiError) -> str:
    return str(error.response.get("error") or error)


# --- thread map --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Thread:
    ticket_id: int
    team_id: str
    channel_id: str
    thread_ts: str


_th = t.slack_threads.c


async def thread_of(uow: SqlUnitOfWork, ticket_id: int) -> Thread | None:
    row = (
        await uow.session.execute(
            select(_th.ticket_id, _th.team_id, _th.channel_id, _th.thread_ts).where(
                _th.ticket_id == ticket_id
            )
        )
    ).first()
    return Thread(*row) if row else None


async def ticket_of_thread(
    uow: SqlUnitOfWork, team_id: str, channel_id: str, thread_ts: str
) -> int | None:
    stmt = select(_th.ticket_id).where(
        _th.team_id == team_id, _th.channel_id == channel_id, _th.thread_ts == thread_ts
    )
    return (await uow.session.execute(stmt)).scalar_one_or_none()


async def save_thread(uow: SqlUnitOfWork, thread: Thread) -> None:
    await uow.session.execute(
        insert(t.slack_threads).values(
            ticket_id=thread.ticket_id,
            team_id=thread.team_id,
            channel_id=thread.channel_id,
            thread_ts=thread.thread_ts,
            created_at=utcnow(),
        )
    )


async def ticket_card(
    uow: SqlUnitOfWork, ticket: Ticket, link: Callable[[str], str | None] | None = None
) -> kit.TicketCard:
    """The root message's facts; `link` makes the customer's stored files download links."""
    customer = await uow.customers.get(ticket.customer_id)
    assignee = await uow.agents.get(ticket.assignee_id) if ticket.assignee_id else None
    assert ticket.id is not None
    timeline = await uow.tickets.timeline(ticket.id)
    first = next((m for m in timeline if getattr(m, "author", None) == Author.CUSTOMER), None)
    files = tuple(kit.attachment_text(a, link) for a in getattr(first, "attachments", []))
    return kit.TicketCard(
        reference=ticket.reference,
        subject=ticket.subject,
        customer=customer.display_name if customer else "",
        category=ticket.category,
        priority=ticket.priority,
        status=ticket.status,
        language=ticket.language,
        assignee=assignee.name if assignee else None,
        assignee_slack_id=assignee.slack_user_id if assignee else None,
        first_response_due=ticket.first_response_due,
        resolution_due=ticket.resolution_due,
        responded=ticket.first_response_at is not None,
        attachments=files,
    )


# --- the desk: outbound relay handlers -----------------------------------------------------


class SlackDesk:
    """Relay handlers keeping each ticket's Slack thread in step with the ticket.

    Each is a relay `Handler`: it takes the `Delivery`, posts under the delivery's key as its
    marker (so a retried delivery never posts twice), returns the Slack ts it produced, and
    raises `Skip` when there is nothing to do (no desk channel for the ticket).
    """

    def __init__(
        self,
        db: Database,
        api: SlackApi,
        *,
        default_channel: str | None,
        routing: Mapping[str, str] | None = None,
        files: SlackFiles | None = None,
        eraser: SlackApi | None = None,
    ) -> None:
        self.db = db
        self.api = api
        self.files = files
        self.eraser = eraser  # a workspace admin's user token: deletes what agents typed
        self.default_channel = default_channel
        self.routing = {k.lower(): v for k, v in (routing or {}).items()}

    def _link(self, stored_id: str) -> str | None:
        return self.files.link(stored_id) if self.files is not None else None

    def channel_for(self, category: str) -> str | None:
        return self.routing.get(category.lower(), self.default_channel)

    def register(self, handlers: Handlers) -> None:
        """Add the desk's handlers to the relay's registry."""
        for event_type, name, handler in self.handlers():
            handlers.add(event_type, name, handler)

    def handlers(self) -> list[tuple[type[events.Event], str, Handler]]:
        return [
            (events.TicketOpened, "slack.open_thread", self.open_thread),
            (events.CustomerWrote, "slack.mirror_customer", self.mirror_customer_message),
            (events.NoteAdded, "slack.mirror_note", self.mirror_note),
            (events.TicketAssigned, "slack.note_change", self.note_change),
            (events.TicketUnassigned, "slack.note_change", self.note_change),
            (events.TicketStatusChanged, "slack.note_change", self.note_change),
            (events.TicketPriorityChanged, "slack.note_change", self.note_change),
            (events.SlaBreached, "slack.announce_sla_breach", self.announce_sla_breach),
            (events.AgentReplied, "slack.confirm_reply", self.confirm_agent_reply),
            (events.CustomerErased, "slack.erase_copies", self.erase_copies),
        ]

    async def open_thread(self, delivery: Delivery) -> str | None:
        """Post the ticket's root message to its category's channel; its thread is the ticket's."""
        event = delivery.event
        assert isinstance(event, events.TicketOpened)
        async with self.db.uow() as uow:
            existing = await thread_of(uow, event.ticket_id)
            if existing is not None:
                return existing.thread_ts
            ticket = await services.get_ticket(_d(uow), event.ticket_id)
            card = await ticket_card(uow, ticket, self._link)
        channel = self.channel_for(card.category)
        if channel is None:
            raise Skip(f"no Slack channel for category {card.category!r}")
        team_id = await self.api.team_id()
        ts = await self.api.post(
            channel,
            kit.root_text(card),
            kit.root_blocks(card, delivery.key),
            marker=delivery.key,
        )
        async with self.db.uow() as uow:
            if await thread_of(uow, event.ticket_id) is None:
                await save_thread(uow, Thread(event.ticket_id, team_id, channel, ts))
                await uow.commit()
        return ts

    async def mirror_customer_message(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, events.CustomerWrote)
        async with self.db.uow() as uow:
            thread = await self._thread(uow, event.ticket_id)
            message = await uow.tickets.message(event.message_id)
            ticket = await services.get_ticket(_d(uow), event.ticket_id)
            customer = await uow.customers.get(ticket.customer_id)
        if message is None:
            raise Skip("the message is gone")
        text = kit.customer_message_text(
            customer.display_name if customer else "",
            message.body,
            message.attachments,
            link=self.files.link if self.files is not None else None,
        )
        return await self._note(thread, text, delivery.key)

    async def mirror_note(self, delivery: Delivery) -> str | None:
        """Notes written elsewhere (admin API, `/careline note`) appear in the thread."""
        event = delivery.event
        assert isinstance(event, events.NoteAdded)
        async with self.db.uow() as uow:
            thread = await self._thread(uow, event.ticket_id)
            message = await uow.tickets.message(event.message_id)
            agent = await uow.agents.get(message.agent_id) if message and message.agent_id else None
        if message is None:
            raise Skip("the note is gone")
        if _slack_message(message.channel, message.external_id) is not None:
            raise Skip("typed in the thread itself")
        author = agent.name if agent else "Careline"
        text = f":memo: *Note* from {kit.escape(author)}:\n{kit.escape(message.body)}"
        return await self._note(thread, text, delivery.key)

    async def note_change(self, delivery: Delivery) -> str | None:
        """Update the root message in place, then say what changed in the thread."""
        event = delivery.event
        ticket_id = int(getattr(event, "ticket_id"))  # noqa: B009 - every ticket event has it
        async with self.db.uow() as uow:
            thread = await self._thread(uow, ticket_id)
            ticket = await services.get_ticket(_d(uow), ticket_id)
            card = await ticket_card(uow, ticket, self._link)
            text = await self._describe(uow, event)
        # chat.update is idempotent: the root always shows the ticket as it is now.
        await self.api.call(
            "chat.update",
            channel=thread.channel_id,
            ts=thread.thread_ts,
            text=kit.root_text(card),
            blocks=kit.root_blocks(card),
        )
        return await self._note(thread, text, delivery.key)

    async def announce_sla_breach(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, events.SlaBreached)
        async with self.db.uow() as uow:
            thread = await self._thread(uow, event.ticket_id)
            ticket = await services.get_ticket(_d(uow), event.ticket_id)
            card = await ticket_card(uow, ticket, self._link)
        what = "first response" if event.kind == "first_response" else "resolution"
        due = ticket.first_response_due if event.kind == "first_response" else ticket.resolution_due
        when = f" (due {kit.slack_date(due)})" if due else ""
        if card.assignee_slack_id:
            whom = f"<@{card.assignee_slack_id}>"
        elif card.assignee:
            whom = kit.escape(card.assignee)
        else:
            whom = "<!here> nobody has it yet"
        text = f":rotating_light: SLA breached: {what} is overdue{when}. {whom}"
        return await self._note(thread, text, delivery.key)

    async def confirm_agent_reply(self, delivery: Delivery) -> str | None:
        """Tick an agent's reply once the relay delivered it; say so when delivery failed.

        Watches the other (non-Slack) handlers of the same AgentReplied event in
        `outbox_deliveries`: all final and one done -> a reaction on the reply; all dead ->
        a warning reaction and a message in the thread; otherwise wait (RetryLater).
        """
        event = delivery.event
        assert isinstance(event, events.AgentReplied)
        async with self.db.uow() as uow:
            thread = await self._thread(uow, event.ticket_id)
            message = await uow.tickets.message(event.message_id)
            siblings = await _sibling_deliveries(uow, delivery)
        if message is None:
            raise Skip("the reply is gone")
        if not siblings:
            raise Skip("nothing delivers agent replies to customers")
        if any(s not in ("done", "skipped", "dead") for s, _ in siblings):
            raise RetryLater("the reply is still being delivered", 2)
        where = _slack_message(message.channel, message.external_id)
        if any(s == "done" for s, _ in siblings):
            if where is None:  # written elsewhere (admin API): say it in the thread instead
                agent = await self._agent_name(message.agent_id)
                text = f":outbox_tray: {kit.escape(agent)} answered the customer:\n" + (
                    kit.escape(message.body)
                )
                return await self._note(thread, text, delivery.key)
            await self._react(where, DELIVERED_REACTION)
            return f"{where[0]}:{where[1]}"
        errors = "; ".join(e for s, e in siblings if s == "dead" and e) or "no channel took it"
        if where is not None:
            await self._react(where, FAILED_REACTION)
        text = (
            ":warning: This reply did not reach the customer: "
            f"{kit.escape(errors[:500])}. An admin can retry it from the dead letters."
        )
        return await self._note(thread, text, delivery.key)

    async def erase_copies(self, delivery: Delivery) -> str | None:
        """Rewrite the desk's copies of an erased customer's words in their ticket threads.

        Every message the app posted in each thread (mirrored messages, notes, confirmations)
        becomes a neutral text, and the root card shows the erased ticket. chat.update is
        idempotent, so a retry redoes at most what it did. What agents typed and shared there
        themselves a bot token can neither edit nor delete
        (https://docs.slack.dev/reference/methods/chat.delete): with a workspace admin's user
        token (`eraser`) those messages and their files are deleted; without one, the thread
        is told how many are left for the agents to delete.
        """
        event = delivery.event
        assert isinstance(event, events.CustomerErased)
        async with self.db.uow() as uow:
            threads = []
            for ticket in await uow.tickets.for_customer(event.customer_id):
                thread = await thread_of(uow, ticket.id or 0)
                if thread is not None:
                    threads.append((thread, await ticket_card(uow, ticket, self._link)))
        if not threads:
            raise Skip("the customer has no Slack thread")
        bot_id = (await self.api.identity()).get("bot_id")
        rewritten = deleted = 0
        for thread, card in threads:
            await self._update(thread.channel_id, thread.thread_ts, kit.root_text(card), card)
            replies = await self._replies(thread)
            for message in replies:
                text = str(message.get("text") or "")
                done = text == ERASED_TEXT or text.startswith(AGENTS_NOTE[:40])
                if message.get("bot_id") == bot_id and not done:
                    rewritten += await self._update(thread.channel_id, message["ts"], ERASED_TEXT)
            typed = [m for m in replies if not m.get("bot_id") and m.get("user")]
            if typed and self.eraser is not None:
                for message in typed:
                    deleted += await self._delete(self.eraser, thread.channel_id, message)
            elif typed:
                count = f"{len(typed)} message" + ("s" if len(typed) > 1 else "")
                them = "them" if len(typed) > 1 else "it"
                note = AGENTS_NOTE.format(count=count, them=them)
                await self._note(thread, note, f"{delivery.key}:{thread.ticket_id}")
        return f"{rewritten} thread messages erased, {deleted} agents' messages deleted"

    async def _replies(self, thread: Thread) -> list[dict[str, Any]]:
        """The thread's replies (not its root), page by page."""
        found, cursor = [], None
        while True:
            answer = await self.api.call(
                "conversations.replies",
                channel=thread.channel_id,
                ts=thread.thread_ts,
                cursor=cursor,
            )
            for message in answer.get("messages") or []:
                if str(message.get("ts")) != thread.thread_ts:
                    found.append(dict(message))
            cursor = (answer.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return found

    async def _delete(self, eraser: SlackApi, channel: str, message: dict[str, Any]) -> int:
        """An agent's message and the files shared with it; 1 when the message went."""
        for file in message.get("files") or []:
            try:
                await eraser.call("files.delete", file=file.get("id"))
            except SlackApiError as error:
                if _slack_error(error) != "file_not_found":
                    raise
        try:
            await eraser.call("chat.delete", channel=channel, ts=message["ts"])
        except SlackApiError as error:
            if _slack_error(error) != "message_not_found":
                raise
            return 0
        return 1

    async def _update(
        self, channel: str, ts: str, text: str, card: kit.TicketCard | None = None
    ) -> int:
        blocks = kit.root_blocks(card) if card is not None else kit.note_blocks(text)
        try:
            await self.api.call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
        except SlackApiError as error:
            if _slack_error(error) not in UNEDITABLE:
                raise
            return 0
        return 1

    # -- helpers -----------------------------------------------------------------------------
    async def _thread(self, uow: SqlUnitOfWork, ticket_id: int) -> Thread:
        thread = await thread_of(uow, ticket_id)
        if thread is not None:
            return thread
        ticket = await uow.tickets.get(ticket_id)
        if ticket is None or self.channel_for(ticket.category) is None:
            raise Skip("the ticket has no Slack thread")
        # The thread is being opened by another handler of an earlier event: wait for it.
        raise RetryLater(f"the Slack thread of ticket {ticket_id} is not open yet", 2)

    async def _note(self, thread: Thread, text: str, marker: str) -> str:
        return await self.api.post(
            thread.channel_id,
            text,
            kit.note_blocks(text, marker),
            thread_ts=thread.thread_ts,
            marker=marker,
        )

    async def _react(self, where: tuple[str, str], name: str) -> None:
        try:
            await self.api.call("reactions.add", channel=where[0], timestamp=where[1], name=name)
        except SlackApiError as error:
            if _slack_error(error) != "already_reacted":
                raise PermanentFailure(f"reactions.add: {_slack_error(error)}") from error

    async def _agent_name(self, agent_id: int | None) -> str:
        if agent_id is None:
            return "An agent"
        async with self.db.uow() as uow:
            agent = await uow.agents.get(agent_id)
        return agent.name if agent else "An agent"

    async def _describe(self, uow: SqlUnitOfWork, event: events.Event) -> str:
        match event:
            case events.TicketAssigned(agent_id=agent_id):
                agent = await uow.agents.get(agent_id)
                name = _mention(agent) if agent else f"agent {agent_id}"
                return f":bust_in_silhouette: Assigned to {name}."
            case events.TicketUnassigned(previous_agent_id=previous):
                agent = await uow.agents.get(previous)
                name = kit.escape(agent.name) if agent else f"agent {previous}"
                return f":bust_in_silhouette: Unassigned (was {name})."
            case events.TicketStatusChanged(old_status=old, new_status=new, reason=reason):
                why = f" — {kit.escape(reason)}" if reason else ""
                return f":arrows_counterclockwise: Status: {old} → *{new}*{why}."
            case events.TicketPriorityChanged(old_priority=old, new_priority=new):
                return f":triangular_flag_on_post: Priority: {old} → *{new}*."
        return f"{event.name}."


async def _sibling_deliveries(uow: SqlUnitOfWork, delivery: Delivery) -> list[tuple[str, str]]:
    """(status, last error) of the event's other, non-Slack handlers."""
    d = t.outbox_deliveries.c
    rows = await uow.session.execute(
        select(d.status, d.last_error).where(
            d.event_id == delivery.event_id, ~d.handler.startswith("slack.")
        )
    )
    return [(status, error or "") for status, error in rows.all()]


def _mention(agent: Agent) -> str:
    return f"<@{agent.slack_user_id}>" if agent.slack_user_id else kit.escape(agent.name)


def _slack_message(channel: Channel | None, external_id: str | None) -> tuple[str, str] | None:
    """`C123:1700000000.000100` -> (channel, ts) for messages typed in Slack."""
    if channel != Channel.SLACK or not external_id or ":" not in external_id:
        return None
    where, ts = external_id.split(":", 1)
    return where, ts


# --- the customer channel --------------------------------------------------------------------


class SlackChannel:
    """Replies into a customer's Slack DM (``ChatChannel``)."""

    channel = Channel.SLACK

    def __init__(self, api: SlackApi) -> None:
        self.api = api

    async def send(self, chat_id: str, reply: Reply, *, marker: str | None = None) -> str:
        """Post `reply`; with a marker, at most once (see `SlackApi.post`)."""
        try:
            return await self.api.post(
                chat_id, reply.as_plain_text(), kit.reply_blocks(reply, marker), marker=marker
            )
        except SlackApiError as error:
            code = _slack_error(error)
            if code in UNREACHABLE_ERRORS:
                raise Unreachable(f"Slack: {code}") from error
            raise PermanentFailure(f"Slack: {code}") from error


# --- inbound: bolt ------------------------------------------------------------------------


class SlackInbound:
    """The bolt app: agents' thread replies, buttons and ``/careline``; customers' DMs."""

    def __init__(
        self,
        db: Database,
        api: SlackApi,
        *,
        signing_secret: str,
        token: str,
        engine: TurnEngine | None = None,
        customers: SlackChannel | None = None,
        files: SlackFiles | None = None,
    ) -> None:
        self.db = db
        self.api = api
        self.files = files
        self.engine = engine
        self.customers = customers or SlackChannel(api)
        self._names: dict[str, str] = {}
        # process_before_response=False: bolt acks at once and runs the listener after the
        # ack (https://tools.slack.dev/bolt-python/concepts/acknowledge).
        self.app = AsyncApp(
            client=api.client,  # carries the bot token
            signing_secret=signing_secret,
            process_before_response=False,
            ignoring_self_events_enabled=True,
        )
        self.app.use(self._inbox_gate)
        self.app.event("message")(self._on_message)
        self.app.event("app_mention")(self._on_ignored)
        self.app.action(re.compile(r"^ticket_"))(self._on_ticket_action)
        self.app.action(re.compile(r"^choice:"))(self._on_customer_choice)
        self.app.command("/careline")(self._on_command)

    # -- redeliveries --------------------------------------------------------------------------
    async def _inbox_gate(
        self, body: dict[str, Any], context: dict[str, Any], next: Callable[[], Awaitable[Any]]
    ) -> Any:
        if body.get("type") != "event_callback":
            return await next()
        if (body.get("event") or {}).get("type") not in INBOX_EVENTS:
            return await next()  # no listener: bolt answers it, nothing to record
        key = _inbox_key(body)
        async with self.db.uow() as uow:
            await inbox.record(uow.session, INBOX_SOURCE, key, payload=body)
            attempt = await inbox.claim(uow.session, INBOX_SOURCE, key, CLAIM_LEASE)
            await uow.commit()
        if attempt is None:
            # Finished, parked, or another copy (maybe on another replica) is working on it.
            log.info("slack delivery %s is handled or being handled; ignoring the copy", key)
            return BoltResponse(status=200, body="")
        if attempt > MAX_ATTEMPTS:
            log.error("slack delivery %s parked after %d attempts", key, attempt - 1)
            await self._finish(key, f"gave up after {attempt - 1} attempts")
            return BoltResponse(status=200, body="")
        context["inbox_key"] = key  # the listener finishes the delivery or lets go of it
        return await next()

    async def _finish(self, key: str | None, error: str | None = None) -> None:
        if key is None:
            return
        async with self.db.uow() as uow:
            await inbox.mark(uow.session, INBOX_SOURCE, key, "parked" if error else "done", error)
            await uow.commit()

    async def _let_go(self, key: str | None) -> None:
        """Give the claim back after a failed attempt, so that a redelivery runs it again."""
        if key is None:
            return
        try:
            async with self.db.uow() as uow:
                await inbox.release(uow.session, INBOX_SOURCE, key)
                await uow.commit()
        except Exception as error:  # the lease runs out by itself
            log.warning("could not let go of slack delivery %s: %s", key, type(error).__name__)

    async def replay_pending(self, older_than: timedelta = timedelta(minutes=1)) -> int:
        """Run again the deliveries left pending (a crash, a failed attempt nobody retried)."""
        async with self.db.uow() as uow:
            rows = await inbox.pending(uow.session, INBOX_SOURCE, older_than, REPLAY_BATCH)
        for _, payload in rows:
            # Socket Mode requests skip the signature check: these were verified on arrival.
            # The gate claims each one as for a redelivery.
            await self.app.async_dispatch(
                AsyncBoltRequest(body=json.dumps(payload), mode="socket_mode")
            )
        return len(rows)

    async def replay_forever(self, stop: asyncio.Event, every: float = REPLAY_EVERY) -> None:
        """`replay_pending` every `every` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                await self.replay_pending()
            except Exception as error:  # the database briefly down: the next round retries
                log.warning("could not replay pending Slack events (%s)", type(error).__name__)

    # -- events --------------------------------------------------------------------------------
    async def _on_ignored(self, context: Any) -> None:
        await self._finish(context.get("inbox_key"))

    async def _on_message(self, event: dict[str, Any], body: dict[str, Any], context: Any) -> None:
        key = context.get("inbox_key")
        error: str | None = None
        try:
            await self._handle_message(event, str(body.get("team_id") or ""))
        except (DomainError, PermanentFailure, Unreachable) as failure:
            error = str(failure)  # the same input would fail the same way: park it
        except RetryLater as failure:
            log.warning("slack delivery %s left pending for a retry: %s", key, failure)
            await self._let_go(key)
            return
        except BaseException:
            await self._let_go(key)  # a redelivery (or the replay) runs it again
            raise
        try:
            await self._finish(key, error)
        except BaseException:
            # Not recorded as done: running it again has no second effect (the services and
            # the engine dedupe, answers are posted under markers), so let a redelivery do it.
            await self._let_go(key)
            raise

    async def _handle_message(self, event: dict[str, Any], team_id: str) -> None:
        if event.get("bot_id") or event.get("subtype") not in (None, "file_share"):
            return  # other bots, edits, deletions, joins: never tickets' business
        user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
        if not user or not channel or not ts:
            return
        if event.get("channel_type") == "im":
            await self._customer_turn(event, user, channel, ts)
            return
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == ts:
            return  # top-level channel chatter is not a ticket reply
        async with self.db.uow() as uow:
            ticket_id = await ticket_of_thread(uow, team_id, channel, thread_ts)
        if ticket_id is None:
            return
        agent = await self.agent_for(user)
        if agent is None:
            await self._ephemeral(channel, user, REFUSAL, thread_ts=thread_ts)
            return
        is_note, text = kit.split_note(event.get("text") or "")
        files = await self._fetch_files(event, owner=None, ticket_id=ticket_id)
        assert agent.id is not None
        try:
            async with self.db.uow() as uow:
                if is_note:
                    await services.add_internal_note(
                        _d(uow), ticket_id, text, agent_id=agent.id, external_id=f"{channel}:{ts}"
                    )
                else:
                    await services.add_agent_reply(
                        _d(uow),
                        ticket_id,
                        agent.id,
                        text,
                        external_id=f"{channel}:{ts}",
                        attachments=[dict(a) for a in files],
                    )
                await uow.commit()
        except DomainError as error:
            await self._ephemeral(channel, user, f"Not sent: {error}", thread_ts=thread_ts)
            raise

    async def _customer_turn(self, event: dict[str, Any], user: str, channel: str, ts: str) -> None:
        if self.engine is None:
            return
        files = await self._fetch_files(event, owner=f"{Channel.SLACK.value}:{user}")
        said = UserSaid(
            channel=Channel.SLACK,
            user_id=user,
            chat_id=channel,
            text=event.get("text") or "",
            message_id=f"{channel}:{ts}",
            display_name=await self.display_name(user),
            attachments=tuple(Attachment(**a) for a in files),
        )
        await self._answer(said)

    async def _fetch_files(
        self, event: dict[str, Any], *, owner: str | None, ticket_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The message's files, copied into the file store (or, without one, as Slack names
        them); the sender hears about those that were not kept."""
        shared = [f for f in event.get("files") or [] if isinstance(f, dict)]
        if not shared:
            return []
        if self.files is None:
            return [a.as_dict() for a in _attachments(event)]
        fetched = await self.files.fetch(shared, owner=owner, ticket_id=ticket_id)
        if fetched.refusals:
            note = "Not kept: " + "; ".join(fetched.refusals)
            with contextlib.suppress(Exception):
                await self._ephemeral(
                    str(event.get("channel")), str(event.get("user")), note,
                    thread_ts=event.get("thread_ts"),
                )  # fmt: skip
        return list(fetched.attachments)

    async def _answer(self, said: UserSaid) -> None:
        """Run the turn and post its answers, each at most once whatever is redelivered.

        A redelivered message gets the answers the engine remembers for it; each goes under a
        marker derived from the message, so one an earlier attempt already posted is found in
        the DM instead of being posted again.
        """
        assert self.engine is not None
        for n, reply in enumerate(await self.engine.handle_turn(said)):
            await self.customers.send(said.chat_id, reply, marker=answer_marker(said, n))

    async def _on_customer_choice(
        self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        if self.engine is None:
            return
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        said = UserSaid(
            channel=Channel.SLACK,
            user_id=user,
            chat_id=channel,
            text=(action.get("text") or {}).get("text", ""),
            message_id=f"{channel}:{action.get('action_ts')}",
            display_name=await self.display_name(user),
            choice=action.get("value"),
        )
        await self._answer(said)

    # -- agents --------------------------------------------------------------------------------
    async def agent_for(self, slack_user_id: str) -> Agent | None:
        """The active agent behind a Slack user, linking them by email on first contact."""
        async with self.db.uow() as uow:
            agent = await uow.agents.by_slack_user(slack_user_id)
            if agent is not None:
                return agent if agent.active else None
        email = await self._email_of(slack_user_id)
        if not email:
            return None
        async with self.db.uow() as uow:
            agent = await uow.agents.by_email(email)
            if agent is None or not agent.active or agent.slack_user_id is not None:
                return None  # unknown, deactivated, or already linked to another Slack user
            agent.slack_user_id = slack_user_id
            await uow.commit()
            log.info("linked Slack user %s to agent %s by email", slack_user_id, agent.id)
            return agent

    async def _email_of(self, slack_user_id: str) -> str | None:
        try:
            answer = await self.api.call("users.info", user=slack_user_id)
        except SlackApiError:
            return None
        user = answer.get("user") or {}
        if user.get("is_bot") or user.get("deleted"):
            return None
        email = (user.get("profile") or {}).get("email")
        return str(email).strip().lower() if email else None

    async def display_name(self, slack_user_id: str) -> str:
        if slack_user_id not in self._names:
            try:
                user = (await self.api.call("users.info", user=slack_user_id)).get("user") or {}
            except (SlackApiError, RetryLater):
                user = {}
            profile = user.get("profile") or {}
            self._names[slack_user_id] = str(
                profile.get("display_name") or profile.get("real_name") or user.get("name") or ""
            )
        return self._names[slack_user_id]

    # -- buttons -------------------------------------------------------------------------------
    async def _on_ticket_action(
        self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user = body["user"]["id"]
        channel = (body.get("channel") or {}).get("id") or body["container"]["channel_id"]
        thread_ts = (body.get("container") or {}).get("message_ts")
        reference = _reference_in(action)
        ticket_id = ticket_id_from_reference(reference or "")
        if ticket_id is None:
            return
        agent = await self.agent_for(user)
        if agent is None:
            await self._ephemeral(channel, user, REFUSAL, thread_ts=thread_ts)
            return
        action_id = action["action_id"]
        try:
            if action_id == kit.ASSIGN:
                target = await self.agent_for(action.get("selected_user") or "")
                if target is None:
                    who = action.get("selected_user")
                    await self._ephemeral(channel, user, f"<@{who}> is not a Careline agent.")
                    return
                await self._work(ticket_id, agent, "assign", target=target)
            elif action_id == kit.PRIORITY:
                value = (action.get("selected_option") or {}).get("value", "")
                await self._work(ticket_id, agent, "priority", argument=value.rsplit(":", 1)[-1])
            else:
                await self._work(ticket_id, agent, action_id.removeprefix("ticket_"))
        except DomainError as error:
            await self._ephemeral(channel, user, f"{reference}: {error}")

    async def _work(
        self,
        ticket_id: int,
        agent: Agent,
        verb: str,
        *,
        target: Agent | None = None,
        argument: str = "",
    ) -> Ticket:
        """One desk action on a ticket, committed; the relay then updates the thread."""
        actor = f"agent:{agent.id}"
        assert agent.id is not None
        async with self.db.uow() as uow:
            match verb:
                case "claim":
                    ticket = await services.assign_ticket(_d(uow), ticket_id, agent.id, actor=actor)
                case "assign":
                    assert target is not None and target.id is not None
                    ticket = await services.assign_ticket(
                        _d(uow), ticket_id, target.id, actor=actor
                    )
                case "priority":
                    ticket = await services.change_priority(
                        _d(uow), ticket_id, Priority(argument), actor=actor
                    )
                case "resolve":
                    ticket = await services.resolve_ticket(_d(uow), ticket_id, actor=actor)
                case "close":
                    ticket = await services.close_ticket(_d(uow), ticket_id, actor=actor)
                case "reopen":
                    ticket = await services.reopen_ticket(_d(uow), ticket_id, actor=actor)
                case "note":
                    await services.add_internal_note(
                        _d(uow), ticket_id, argument, agent_id=agent.id
                    )
                    ticket = await services.get_ticket(_d(uow), ticket_id)
                case _:
                    ticket = await services.get_ticket(_d(uow), ticket_id)
            await uow.commit()
        return ticket

    # -- /careline -------------------------------------------------------------------------------
    async def _on_command(
        self, ack: Callable[..., Awaitable[Any]], command: dict[str, Any]
    ) -> None:
        await ack()
        user, channel = command["user_id"], command["channel_id"]
        parsed = kit.parse_command(command.get("text") or "")
        if parsed.verb == "help" or parsed.problem:
            await self._ephemeral(
                channel, user, "\n\n".join(filter(None, [parsed.problem, kit.HELP]))
            )
            return
        agent = await self.agent_for(user)
        if agent is None:
            await self._ephemeral(channel, user, REFUSAL)
            return
        ticket_id = ticket_id_from_reference(parsed.reference or "")
        assert ticket_id is not None
        try:
            target = None
            if parsed.verb == "assign":
                target = await self.agent_for(parsed.user_id or "")
                if target is None:
                    await self._ephemeral(
                        channel, user, f"<@{parsed.user_id}> is not a Careline agent."
                    )
                    return
            ticket = await self._work(
                ticket_id, agent, parsed.verb, target=target, argument=parsed.argument
            )
            async with self.db.uow() as uow:
                card = await ticket_card(uow, ticket, self.files.link if self.files else None)
        except DomainError as error:
            await self._ephemeral(channel, user, f"{parsed.reference}: {error}")
            return
        done = {
            "status": "",
            "note": "Note added.",
            "assign": f"Assigned to {kit.who(card)}.",
            "claim": "It's yours.",
        }.get(parsed.verb, "Done.")
        await self._ephemeral(channel, user, "\n".join(filter(None, [done, kit.status_text(card)])))

    async def _ephemeral(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> None:
        try:
            await self.api.call(
                "chat.postEphemeral", channel=channel, user=user, text=text, thread_ts=thread_ts
            )
        except (SlackApiError, RetryLater) as error:
            log.warning("could not tell %s in %s: %s", user, channel, error)


def _inbox_key(body: dict[str, Any]) -> str:
    """`channel:ts` for messages (the same message may come as several events), else event id."""
    event = body.get("event") or {}
    message = event.get("type") == "message" and not event.get("subtype")
    if message and event.get("channel") and event.get("ts"):
        return f"{event['channel']}:{event['ts']}"
    return str(body.get("event_id") or f"{event.get('type')}:{event.get('event_ts')}")


def answer_marker(said: UserSaid, n: int) -> str:
    """The marker of the `n`-th answer to a customer's message (the same for every copy)."""
    return f"answer:{said.message_id}:{n}"


def _reference_in(action: dict[str, Any]) -> str | None:
    for candidate in (
        str(action.get("value") or "").split(":")[0],
        str((action.get("selected_option") or {}).get("value") or "").split(":")[0],
        str(action.get("block_id") or "").removeprefix(kit.ACTIONS_BLOCK_PREFIX),
    ):
        if ticket_id_from_reference(candidate) is not None:
            return candidate.upper()
    return None


def _attachments(event: dict[str, Any]) -> list[Attachment]:
    return [
        Attachment(
            kind="file",
            file_id=f.get("id"),
            name=f.get("name") or f.get("title"),
            mime_type=f.get("mimetype"),
            size=f.get("size"),
        )
        for f in event.get("files") or []
    ]


# --- serving -------------------------------------------------------------------------------


#: Slack's requests are small: a message is at most 40,000 characters and an interaction
#: carries one message of at most 50 blocks (https://docs.slack.dev/reference/block-kit/blocks).
#: 1 MiB leaves room for both and keeps a forged 10 MB post out of memory and out of bolt.
MAX_BODY = 1024 * 1024
BOLT_REFUSAL = '{"error":"invalid request"}'  # what bolt answers a bad signature, with 401
_ID_FIELDS = ("user", "team", "channel", "enterprise")


def _malformed(body: bytes, content_type: str) -> str | None:
    """Why a body can't be a Slack request, or None. Bolt assumes UTF-8 and Slack's shapes."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    if "json" in content_type or text.lstrip().startswith(("{", "[")):
        candidates = [text]
    else:  # form-encoded: interactivity sends its JSON in `payload`
        candidates = parse_qs(text).get("payload", [])
    for candidate in candidates:
        try:
            parsed = jsonguard.loads(candidate)
        except RefusedBody as refused:
            return str(refused)
        if not isinstance(parsed, dict):
            return "the body is not a JSON object"
        if (problem := _unexpected_shape(parsed)) is not None:
            return problem
    return None


def _unexpected_shape(payload: dict[str, Any]) -> str | None:
    """What bolt would trip over before the ack (it answers 500 then), or None.

    Bolt reads these fields as Slack documents them (e.g. `event.get(...)`,
    `len(authorizations)`, `actions[0]["action_id"]`) before any of our code runs.
    """
    event = payload.get("event", {})
    if not isinstance(event, dict) or not isinstance(event.get("type", ""), str):
        return "`event` is not an event object"
    for where, part in (("", payload), ("event.", event)):
        for name in _ID_FIELDS:
            if not isinstance(part.get(name), str | dict | None):
                return f"`{where}{name}` is neither an id nor an object"
    if not _objects(payload.get("authorizations", [])):
        return "`authorizations` is not a list of objects"
    actions = payload.get("actions", [])
    if not _objects(actions):
        return "`actions` is not a list of objects"
    named = actions and all(isinstance(a.get("action_id"), str) for a in actions)
    if payload.get("type") == "block_actions" and not named:
        return "a block_actions payload needs actions with an `action_id`"
    return None


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


async def _checked_body(request: Request) -> bytes:
    """The body, read with a cap and checked the way bolt will read it, or RefusedBody."""
    declared = request.headers.get("content-length")
    body = await read_capped(request.stream(), declared=declared, limit=MAX_BODY)
    problem = _malformed(body, request.headers.get("content-type", ""))
    if problem is not None:
        raise RefusedBody(problem)
    return body


def _timestamp_unreadable(request: Request) -> bool:
    """X-Slack-Request-Timestamp present but not a number (slack_sdk's int() raises on it)."""
    timestamp = request.headers.get("x-slack-request-timestamp")
    if timestamp is None:
        return False  # bolt reads it as 0: too old, refused
    try:
        int(timestamp)
    except ValueError:
        return True
    return False


def _with_body(request: Request, body: bytes) -> Request:
    """The same request, its body already read and checked, for bolt to read again."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _drop(record: logging.LogRecord) -> bool:
    return False


def quiet_bolt_verification() -> None:
    """Silence bolt's log line about a bad signature: it holds the whole unauthenticated body.

    slack_bolt/middleware/request_verification/request_verification.py `_debug_log_error`
    logs it at INFO, and bolt resets that logger's level whenever it builds the middleware,
    so a filter drops it; `slack_router` logs the refusal itself, without the body.
    """
    logging.getLogger("slack_bolt.RequestVerification").addFilter(_drop)


def slack_router(inbound: SlackInbound) -> APIRouter:
    """`/slack/events`, `/slack/interactions`, `/slack/commands` for the server to mount.

    Bolt checks the signature and timestamp (401 otherwise), answers url_verification and acks.
    Before bolt sees a request, its body is read with a cap (413) and checked (400): bolt
    logs and parses what it is given.
    """
    quiet_bolt_verification()
    handler = AsyncSlackRequestHandler(inbound.app)
    router = APIRouter(prefix="/slack", include_in_schema=False)

    async def receive(request: Request) -> Response:
        try:
            body = await _checked_body(request)
        except RefusedBody as refused:  # its text names what is wrong, never the body's text
            log.warning("slack: refused a request to %s: %s", request.url.path, refused)
            return Response(str(refused), status_code=refused.status, media_type="text/plain")
        if _timestamp_unreadable(request):
            response = Response(BOLT_REFUSAL, status_code=401, media_type="application/json")
        else:
            response = await handler.handle(_with_body(request, body))
        if response.status_code == 401:
            log.warning(
                "slack: refused a request to %s: bad or stale signature (%d bytes)",
                request.url.path,
                len(body),
            )
        return response

    for path in ("/events", "/interactions", "/commands"):
        router.add_api_route(path, receive, methods=["POST"])
    return router


async def start_socket_mode(inbound: SlackInbound, app_token: str) -> Any:
    """Connect over Socket Mode (local development); `await handler.close_async()` to stop."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    handler = AsyncSocketModeHandler(inbound.app, app_token)
    try:
        # The SDK's connect() retries a refused apps.connections.open forever, so a wrong token
        # (e.g. the xoxb- bot token) would hang start-up; ask once here and fail loudly instead.
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
        await handler.connect_async()
    except BaseException:
        await handler.close_async()  # its aiohttp session and message processor
        raise
    return handler


@dataclass
class Slack:
    """Everything Slack, built once at start-up; a channel plug (bots.channels.ChannelPlug):
    the agents' desk, and the customers' DMs."""

    api: SlackApi
    desk: SlackDesk
    inbound: SlackInbound
    channel: SlackChannel
    app_token: str | None = None  # Socket Mode (development)
    socket: Any = None

    def routes(self) -> list[Any]:
        return [slack_router(self.inbound)]

    def register(self, handlers: Any) -> None:
        self.desk.register(handlers)

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        """Where events are received and the engine runs: replay what a crash left, now and
        later (a delivery whose process died, or that failed after Slack's last retry)."""
        self.inbound.engine = start.engine
        if not start.receives:
            return []
        try:
            await self.inbound.replay_pending()
        except Exception as exc:  # Slack or the database briefly down: the loop retries
            log.warning("could not replay pending Slack events (%s)", type(exc).__name__)
        replay = self.inbound.replay_forever(start.stopping)
        if self.app_token is not None:
            self.socket = await start_socket_mode(self.inbound, self.app_token)
        return [asyncio.create_task(replay, name="slack-replay")]

    async def stop(self, grace: float) -> None:
        if self.socket is not None:
            await self.socket.close_async()


def slack_client(
    settings: Settings, *, timeout: int = 10, token: str | None = None
) -> AsyncWebClient:
    """The bot's client, or with `token` another's (the erasure token)."""
    assert settings.slack_bot_token is not None
    # No retry handlers: a blind retry of chat.postMessage after a dropped connection can post
    # twice; SlackApi decides what is safe to repeat.
    return AsyncWebClient(
        token=token or settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=timeout,
        retry_handlers=[],
    )


def build_slack(
    settings: Settings,
    db: Database,
    store: FileStore | None = None,
    links: Callable[[], FileLinks | None] = lambda: None,
    *,
    engine: TurnEngine | None = None,
    interval: float = 1.0,
    timeout: int = 10,
) -> Slack:
    """The Slack parts from settings (`settings.slack_enabled` must be true)."""
    assert settings.slack_signing_secret is not None and settings.slack_bot_token is not None
    api = SlackApi(slack_client(settings, timeout=timeout), db=db, interval=interval)
    channel = SlackChannel(api)
    files = SlackFiles(
        store,
        settings.slack_bot_token.get_secret_value(),
        api_url=settings.slack_api_url,
        max_bytes=settings.max_upload_bytes,
        links=links,
        link_ttl_seconds=settings.chat_file_link_days * 24 * 3600,
    )
    desk = SlackDesk(
        db,
        api,
        default_channel=settings.slack_support_channel,
        routing=settings.slack_routing,
        files=files,
        eraser=(
            SlackApi(
                slack_client(settings, timeout=timeout, token=erasure.get_secret_value()),
                interval=interval,
            )
            if (erasure := settings.slack_erasure_token) is not None
            else None
        ),
    )
    inbound = SlackInbound(
        db,
        api,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        token=settings.slack_bot_token.get_secret_value(),
        engine=engine,
        customers=channel,
        files=files,
    )
    app_token = settings.slack_app_token
    return Slack(
        api=api,
        desk=desk,
        inbound=inbound,
        channel=channel,
        app_token=app_token.get_secret_value() if app_token is not None else None,
    )
