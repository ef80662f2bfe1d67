"""The relay handlers that tell the customer (and the assignee) when a ticket changes: in the
customer's chat, by text, by email, or both, as the customer chose.

Nothing receives email replies unless reply addresses are set, so no text asks for one:
`{where}` says where to write, "here" in the chat and the customer's chat by name in an
email.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from bots.channels import ChatChannel, FileChannel, OutgoingFile, Unreachable
from bots.email import Email, EmailAttachment, EmailSender
from bots.notices.facts import Facts, FactsLoader
from bots.notices.words import (
    AgentReply,
    notice_kind,
    rating_choices,
    say_in,
    where_to_write,
)
from bots.notices.writer import NoticeWriter
from bots.relay import Delivery, Handlers, Skip
from core import events as ev
from core.db import outbox
from core.db.database import Database
from core.db.reachability import SqlReachability
from core.db.repositories import record_delivered_id
from core.db.suppressions import is_suppressed
from core.files import FileLinks, StoredFile, human_size
from core.model import Channel, ChannelIdentity, Customer, Notify, utcnow
from core.ports import EmailVerification, FileStore, Reachability
from dialogs.catalogue import Catalogue, shipped_catalogue
from dialogs.turn import Choice, Reply

log = logging.getLogger(__name__)


class CustomerNotices:
    """The relay handlers that tell customers (and assignees) about their tickets."""

    def __init__(
        self,
        db: Database,
        *,
        channels: Mapping[Channel, ChatChannel],
        email: EmailSender,
        reopen_days: float = 7,
        minutes_per_ticket: float = 10.0,
        chat_on_open: bool = False,
        timeline_entries: int = 20,
        catalogue: Catalogue | None = None,
        reply_to: Callable[[int], str] | None = None,
        files: FileStore | None = None,
        links: Callable[[], FileLinks | None] = lambda: None,
        chat_link_days: float = 7,
        max_email_attachments_bytes: int = 10 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.reachability: Reachability = SqlReachability(db)
        self.channels = dict(channels)
        self.email = email
        # The dialog answers the opening turn with the reference itself; a chat notice on
        # TicketOpened would say it twice. Turn on for channels whose turns do not.
        self.chat_on_open = chat_on_open
        self.catalogue = catalogue or shipped_catalogue()
        # A ticket's reply address (bots/email_inbound.ReplyAddresses.for_ticket), if any.
        self.reply_to = reply_to
        # An agent's files: the bytes for chats that carry files and for small emails, a
        # signed link for chats that only point at them (core.files).
        self.files = files
        self.links = links
        self.chat_link_days = chat_link_days
        self.max_email_attachments_bytes = max_email_attachments_bytes
        self.writer = NoticeWriter(self.catalogue)
        self.loader = FactsLoader(
            db,
            self.catalogue,
            reopen_days=reopen_days,
            minutes_per_ticket=minutes_per_ticket,
            timeline_entries=timeline_entries,
        )

    def register(self, handlers: Handlers) -> None:
        """Add every customer-facing handler to the relay's registry."""
        chat_events: list[type[ev.Event]] = [
            ev.TicketAssigned,
            ev.TicketStatusChanged,
            ev.HumanRequested,
        ]
        if self.chat_on_open:
            chat_events.append(ev.TicketOpened)
        for event in chat_events:
            handlers.add(event, "customer_chat", self.chat_notice)
        for event in (
            ev.TicketOpened,
            ev.TicketAssigned,
            ev.TicketStatusChanged,
            ev.HumanRequested,
            ev.AgentReplied,
        ):
            handlers.add(event, "customer_email", self.email_notice)
        # The same chat as the notices: an assignment notice goes out before the reply.
        handlers.add(
            ev.AgentReplied, "agent_reply_chat", self.deliver_agent_reply, lane="customer_chat"
        )
        handlers.add(
            ev.AgentSentFile, "agent_file_chat", self.deliver_agent_file, lane="customer_chat"
        )
        handlers.add(ev.NoticeUndelivered, "undelivered_email", self.undelivered)
        handlers.add(ev.EmailVerificationRequested, "verification_email", self.verification)
        if Channel.SMS in self.channels:  # texts to a verified phone, for customers of other chats
            handlers.add(ev.PhoneVerificationRequested, "verification_text", self.phone_code)
            for event in (ev.TicketAssigned, ev.TicketStatusChanged, ev.HumanRequested):
                handlers.add(event, "customer_text", self.text_notice)
            handlers.add(
                ev.AgentReplied, "agent_reply_text", self.text_notice, lane="customer_text"
            )
        handlers.add(ev.SlaBreached, "assignee_email", self.sla_breach_to_assignee)

    # --- handlers -------------------------------------------------------------------------

    async def chat_notice(self, delivery: Delivery) -> str | None:
        event = delivery.event
        kind = notice_kind(event)
        if kind is None:
            raise Skip(f"{delivery.event_type} tells the customer nothing")
        facts = await self.loader.load(event, kind)
        if facts.customer.notify == Notify.EMAIL:
            raise Skip("the customer chose email only")
        kind = "with_agent" if kind == "queued" and facts.fields["position"] == 0 else kind
        choices = (
            rating_choices(facts.ticket.reference, self.catalogue, facts.language)
            if kind == "resolved"
            else ()
        )
        return await self._to_chat(delivery, facts, kind, choices)

    async def deliver_agent_reply(self, delivery: Delivery) -> str | None:
        """The agent's answer, under the agent's name, in the customer's chat."""
        event = delivery.event
        assert isinstance(event, ev.AgentReplied)
        facts = await self.loader.load(event, "agent_reply_chat")
        provider_id = await self._to_chat(delivery, facts, "agent_reply_chat", ())
        if provider_id:
            try:
                await record_delivered_id(self.db, event.message_id, provider_id)
            except Exception:  # the message is out; a retry would send it twice
                log.exception(
                    "relay: could not record delivered_id of message %s", event.message_id
                )
        return provider_id

    async def deliver_agent_file(self, delivery: Delivery) -> str | None:
        """One file of an agent's answer, after its words, in the customer's chat: the file
        itself where the chat carries files, else a signed link. Each file is an event of its
        own, so the relay's journal delivers each once."""
        event = delivery.event
        assert isinstance(event, ev.AgentSentFile)
        if self.files is None:
            raise Skip("no file store")
        facts = await self.loader.load(event, "file_sent")
        if facts.customer.notify == Notify.EMAIL:
            raise Skip("the customer chose email only; the email carries the file")
        identity = facts.identity
        if identity is None or not identity.chat_id or not identity.reachable:
            raise Skip("no chat to send the file to; the email carries it")
        channel = self.channels.get(identity.channel)
        if channel is None:
            raise Skip(f"no {identity.channel.value} channel is configured")
        found = await self.files.read(event.stored_id)
        if found is None:
            raise Skip("the file is no longer kept")
        try:
            sent = await self._send_file(channel, identity.chat_id, facts, *found)
        except Unreachable:
            await self._mark_unreachable(identity)
            raise Skip("the chat refuses us; the email carries the file") from None
        if sent is None:
            raise Skip("no link can be offered in this chat (set CARELINE_PUBLIC_URL)")
        return sent

    async def _send_file(
        self, channel: ChatChannel, chat_id: str, facts: Facts, file: StoredFile, content: bytes
    ) -> str | None:
        say = say_in(self.catalogue, facts.language)
        agent = str(facts.fields["agent"])
        ttl = self.chat_link_days * 24 * 3600
        links = self.links()
        if isinstance(channel, FileChannel):
            outgoing = OutgoingFile(
                name=file.name,
                mime_type=file.mime_type,
                content=content,
                caption=say("notice.file_sent.text", agent=agent, name=file.name),
                link=links.path(file.id, ttl=ttl) if links is not None else None,
                sender=agent,
            )
            return await channel.send_file(chat_id, outgoing)
        url = links.url(file.id, ttl=ttl) if links is not None else None
        if url is None:
            log.warning("relay: no public URL (CARELINE_PUBLIC_URL) to link a file in a chat")
            return None
        days = say("duration.days", n=self.chat_link_days)
        text = say("notice.file_link.text", agent=agent, name=file.name, link=url, days=days)
        return await channel.send(chat_id, Reply(text))

    async def undelivered(self, delivery: Delivery) -> str | None:
        """A chat notice the platform later reported undelivered (a text): by email instead."""
        event = delivery.event
        assert isinstance(event, ev.NoticeUndelivered)
        found = await outbox.event_by_id(self.db, event.event_id)
        if found is None:
            raise Skip("the undelivered notice's event is gone")
        original = ev.Event.from_payload(*found)
        if event.handler == "agent_reply_chat":
            kind: str | None = "agent_reply_chat"
        elif event.handler == "customer_chat":
            kind = notice_kind(original)
        else:
            raise Skip(f"{event.handler} has no email of its own (the reply's email carries it)")
        if kind is None:
            raise Skip(f"{original.name} tells the customer nothing")
        facts = await self.loader.load(original, kind)
        kind = "with_agent" if kind == "queued" and facts.fields["position"] == 0 else kind
        return await self._email_instead(delivery, facts, kind, original)

    async def text_notice(self, delivery: Delivery) -> str | None:
        """A notice (or an agent's reply) by text to the verified phone of a customer who asked
        for texts besides their chat. Without choices: an answer texted back would come from a
        number that is not their chat."""
        event = delivery.event
        kind = "agent_reply_chat" if isinstance(event, ev.AgentReplied) else notice_kind(event)
        if kind is None:
            raise Skip(f"{delivery.event_type} tells the customer nothing")
        facts = await self.loader.load(event, kind)
        customer = facts.customer
        if not (customer.texts and customer.phone_verified and customer.phone):
            raise Skip("the customer did not ask for texts")
        if facts.identity is not None and facts.identity.channel == Channel.SMS:
            raise Skip("their chat is SMS: the chat notice is the text")
        kind = "with_agent" if kind == "queued" and facts.fields["position"] == 0 else kind
        _, text = self.writer.fill(kind, facts)
        reply = (
            AgentReply(text, agent=facts.fields["agent"], body=facts.fields["body"])
            if kind == "agent_reply_chat"
            else Reply(text)
        )
        try:
            return await self.channels[Channel.SMS].send(customer.phone, reply)
        except Unreachable:  # opted out (STOP) or not a mobile: no more texts
            await self.reachability.stop_texts(customer.phone)
            raise Skip("the number refuses texts; texts to it are off") from None

    async def phone_code(self, delivery: Delivery) -> str | None:
        """The code that confirms a phone number, by text."""
        event = delivery.event
        assert isinstance(event, ev.PhoneVerificationRequested)
        verification, customer = await self._code_to_send(event)
        minutes = max(1, round((verification.expires_at - utcnow()).total_seconds() / 60))
        language = customer.language
        expires_in = self.catalogue.text("duration.minutes", language, n=minutes)
        text = self.catalogue.text(
            "notice.verification.sms", language, code=verification.code, expires_in=expires_in
        )
        return await self.channels[Channel.SMS].send(verification.email, Reply(text))

    async def _code_to_send(
        self, event: ev.EmailVerificationRequested | ev.PhoneVerificationRequested
    ) -> tuple[EmailVerification, Customer]:
        """The code to mail or text and its customer, or Skip when it may no longer go."""
        async with self.db.uow() as uow:
            verification = await uow.email_verifications.get(event.verification_id)
            customer = await uow.customers.get(event.customer_id)
        if verification is None:
            raise Skip("the verification request is gone")
        if verification.verified_at is not None or verification.expires_at <= utcnow():
            raise Skip("the code is already used or expired")
        if customer is None or customer.erased_at is not None:
            raise Skip("the customer is gone")
        return verification, customer

    async def email_notice(self, delivery: Delivery) -> str | None:
        event = delivery.event
        kind = notice_kind(event)
        if kind is None:
            raise Skip(f"{delivery.event_type} tells the customer nothing")
        facts = await self.loader.load(event, kind, timeline=True)
        if facts.customer.notify == Notify.CHAT:
            raise Skip("the customer chose chat only")
        kind = "with_agent" if kind == "queued" and facts.fields["position"] == 0 else kind
        return await self._email_customer(delivery, facts, kind)

    async def verification(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, ev.EmailVerificationRequested)
        verification, customer = await self._code_to_send(event)
        address, code, expires_at = verification.email, verification.code, verification.expires_at
        if await is_suppressed(self.db, address):
            raise Skip("the address bounced or reported spam")
        minutes = max(1, round((expires_at - utcnow()).total_seconds() / 60))
        language = customer.language
        keys = ("verification.code", "verification.use", "verification.ignore")
        words = self.writer.words(language, *keys)
        subject = self.catalogue.text("notice.verification.subject", language)
        expires_in = self.catalogue.text("duration.minutes", language, n=minutes)
        context = {
            "subject": subject,
            "greeting": self.writer.greeting(customer),
            # The code stands out on its own line after the words that introduce it.
            "code_intro": words["verification.code"].split("{code}")[0].strip(),
            "use": words["verification.use"].replace("{expires_in}", expires_in),
            "ignore": words["verification.ignore"],
            "code": code,
            "language": self.catalogue.language_for(language),
        }
        return await self.email.send(
            Email(
                to=address,
                subject=subject,
                text=self.writer.render("verification.txt.j2", context),
                html=self.writer.render("verification.html.j2", context),
                category="verification",
                key=delivery.key,
            )
        )

    async def sla_breach_to_assignee(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, ev.SlaBreached)
        facts = await self.loader.load(event, "sla_breach", timeline=True, staff=True)
        if facts.agent_email is None:
            raise Skip("nobody is assigned; the Slack thread shows the breach")
        due = (
            facts.ticket.first_response_due
            if event.kind == "first_response"
            else facts.ticket.resolution_due
        )
        facts.fields.update(
            kind=event.kind.replace("_", " "),
            due=due.strftime("%Y-%m-%d %H:%M UTC") if due else "unknown",
            priority=facts.ticket.priority.value,
        )
        subject, text = self.writer.fill("sla_breach", facts)
        context = self.writer.context(facts, subject, text, None)
        return await self.email.send(
            Email(
                to=facts.agent_email,
                subject=subject,
                text=self.writer.render("notice.txt.j2", context),
                html=self.writer.render("notice.html.j2", context),
                category="sla_breach",
                key=delivery.key,
            )
        )

    # --- sending --------------------------------------------------------------------------

    async def _to_chat(
        self, delivery: Delivery, facts: Facts, kind: str, choices: tuple[Choice, ...]
    ) -> str | None:
        identity = facts.identity
        if identity is None or not identity.chat_id:
            raise Skip("the ticket has no chat to answer in")
        channel = self.channels.get(identity.channel)
        if channel is None:
            raise Skip(f"no {identity.channel.value} channel is configured")
        _, text = self.writer.fill(kind, facts)
        reply = (
            AgentReply(text, agent=facts.fields["agent"], body=facts.fields["body"])
            if kind == "agent_reply_chat"
            else Reply(text, choices)
        )
        if identity.reachable:
            try:
                return await channel.send(identity.chat_id, reply)
            except Unreachable:
                await self._mark_unreachable(identity)
        return await self._email_instead(delivery, facts, kind)

    async def _email_instead(
        self, delivery: Delivery, facts: Facts, kind: str, event: ev.Event | None = None
    ) -> str | None:
        """The chat refuses us (blocked bot, undelivered text): tell the customer by email
        instead. `event`: the notice's own, when `delivery` is a later one about it."""
        if facts.customer.notify != Notify.CHAT:
            raise Skip("unreachable in chat; the email notice covers it")
        if kind == "agent_reply_chat":
            kind = "agent_replied"
        facts = await self.loader.load(event or delivery.event, kind, timeline=True)
        return await self._email_customer(delivery, facts, kind)

    async def _email_customer(self, delivery: Delivery, facts: Facts, kind: str) -> str | None:
        customer = facts.customer
        if not customer.can_receive_email or customer.email is None:
            raise Skip("the customer has no verified, deliverable email address")
        if await is_suppressed(self.db, customer.email):
            raise Skip("the address bounced or reported spam")
        facts.fields["where"] = where_to_write(facts.identity, self.catalogue, facts.language)
        subject, text = self.writer.fill(kind, facts)
        ticket_id = facts.ticket.id
        reply_to = self.reply_to(ticket_id) if self.reply_to and ticket_id else None
        attachments, notes = await self._email_files(facts)
        if notes:
            text = "\n\n".join([text, *notes])
        context = self.writer.context(
            facts, subject, text, customer, rating=kind == "resolved", answerable=bool(reply_to)
        )
        return await self.email.send(
            Email(
                to=customer.email,
                subject=subject,
                text=self.writer.render("notice.txt.j2", context),
                html=self.writer.render("notice.html.j2", context),
                category=kind,
                key=delivery.key,
                reply_to=reply_to,
                attachments=attachments,
            )
        )

    async def _email_files(self, facts: Facts) -> tuple[tuple[EmailAttachment, ...], list[str]]:
        """An agent reply's files attached while they fit `max_email_attachments_bytes`; a line
        for each that was attached and for each that did not fit."""
        if self.files is None or not facts.files:
            return (), []
        say = say_in(self.catalogue, facts.language)
        attached: list[EmailAttachment] = []
        notes: list[str] = []
        room = self.max_email_attachments_bytes
        for stored_id in facts.files:
            file = await self.files.info(stored_id)
            if file is None:
                continue
            if file.size > room:  # named, and its bytes never read
                size = human_size(file.size)
                notes.append(say("notice.file_too_large.text", name=file.name, size=size))
                continue
            found = await self.files.read(stored_id)
            if found is None:
                continue
            room -= file.size
            attached.append(EmailAttachment(file.name, file.mime_type, found[1]))
            notes.append(say("notice.file_attached.text", name=file.name))
        return tuple(attached), notes

    async def _mark_unreachable(self, identity: ChannelIdentity) -> None:
        identity.reachable = False
        assert identity.id is not None
        await self.reachability.mark(identity.channel, False, identity_id=identity.id)
        log.info("relay: %s identity %s is unreachable in chat", identity.channel, identity.id)
