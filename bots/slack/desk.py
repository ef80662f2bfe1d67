"""The desk: the relay handlers that keep one Slack thread per ticket (open it, mirror the
customer's messages, update the root card, note every change, announce SLA breaches, confirm
or report the delivery of an agent's reply, erase)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from bots.channels import PermanentFailure, RetryLater
from bots.relay import Delivery, Handler, Handlers, Skip
from bots.slack import blocks as kit
from bots.slack.api import SlackApi, slack_error
from bots.slack.files import SlackFiles
from core import events, services
from core.db.database import Database, SqlUnitOfWork, domain
from core.db.outbox import other_handlers
from core.model import Agent, Author, Channel, Ticket
from core.ports import Thread

log = logging.getLogger("careline.slack")

DELIVERED_REACTION = "white_check_mark"
FAILED_REACTION = "warning"
ERASED_TEXT = ":wastebasket: Erased at the customer's request."
AGENTS_NOTE = (
    ":warning: This customer's data was erased. {count} typed in this thread by agents may "
    "quote them, and Careline cannot delete messages it did not post (a workspace admin's "
    "token, SLACK_ERASURE_TOKEN, lets it): please delete {them} by hand."
)
UNEDITABLE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})


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
            existing = await uow.threads.thread_of(event.ticket_id)
            if existing is not None:
                return existing.thread_ts
            ticket = await services.get_ticket(domain(uow), event.ticket_id)
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
            if await uow.threads.thread_of(event.ticket_id) is None:
                await uow.threads.save(Thread(event.ticket_id, team_id, channel, ts))
                await uow.commit()
        return ts

    async def mirror_customer_message(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, events.CustomerWrote)
        async with self.db.uow() as uow:
            thread = await self._thread(uow, event.ticket_id)
            message = await uow.tickets.message(event.message_id)
            ticket = await services.get_ticket(domain(uow), event.ticket_id)
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
            ticket = await services.get_ticket(domain(uow), ticket_id)
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
            ticket = await services.get_ticket(domain(uow), event.ticket_id)
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
            siblings = await other_handlers(uow.session, delivery.event_id, excluding="slack.")
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
                thread = await uow.threads.thread_of(ticket.id or 0)
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
                if slack_error(error) != "file_not_found":
                    raise
        try:
            await eraser.call("chat.delete", channel=channel, ts=message["ts"])
        except SlackApiError as error:
            if slack_error(error) != "message_not_found":
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
            if slack_error(error) not in UNEDITABLE:
                raise
            return 0
        return 1

    # -- helpers -----------------------------------------------------------------------------
    async def _thread(self, uow: SqlUnitOfWork, ticket_id: int) -> Thread:
        thread = await uow.threads.thread_of(ticket_id)
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
            if slack_error(error) != "already_reacted":
                raise PermanentFailure(f"reactions.add: {slack_error(error)}") from error

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


def _mention(agent: Agent) -> str:
    return f"<@{agent.slack_user_id}>" if agent.slack_user_id else kit.escape(agent.name)


def _slack_message(channel: Channel | None, external_id: str | None) -> tuple[str, str] | None:
    """`C123:1700000000.000100` -> (channel, ts) for messages typed in Slack."""
    if channel != Channel.SLACK or not external_id or ":" not in external_id:
        return None
    where, ts = external_id.split(":", 1)
    return where, ts
