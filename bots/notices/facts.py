"""What one notice needs (the ticket, its customer and chat, the agent, the texts' fields),
loaded in one short transaction before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bots.notices.words import customer_timeline, human_wait, say_in
from bots.relay import Skip
from core import events as ev
from core.db.database import Database
from core.model import ChannelIdentity, Customer, Ticket
from dialogs.catalogue import Catalogue


@dataclass(slots=True)
class Facts:
    """What one notice needs, loaded in one short transaction before anything is sent."""

    ticket: Ticket
    customer: Customer
    identity: ChannelIdentity | None
    fields: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, str]] = field(default_factory=list)
    agent: str | None = None
    agent_email: str | None = None
    language: str | None = None  # the reader's: the customer's, or None (the default) for staff
    files: list[str] = field(default_factory=list)  # stored ids of an agent reply's files


class FactsLoader:
    """Loads a notice's facts; `staff` facts are read in the default language."""

    def __init__(
        self,
        db: Database,
        catalogue: Catalogue,
        *,
        reopen_days: float,
        minutes_per_ticket: float,
        timeline_entries: int,
    ) -> None:
        self.db = db
        self.catalogue = catalogue
        self.reopen_days = reopen_days
        self.minutes_per_ticket = minutes_per_ticket  # expected wait per ticket ahead in line
        self.timeline_entries = timeline_entries

    async def load(
        self, event: ev.Event, kind: str, *, timeline: bool = False, staff: bool = False
    ) -> Facts:
        """`staff`: the reader is the assignee, who reads the default language."""
        ticket_id = getattr(event, "ticket_id", None)
        if ticket_id is None:
            raise Skip(f"{event.name} is not about a ticket")
        async with self.db.uow() as uow:
            ticket = await uow.tickets.get(ticket_id)
            if ticket is None:
                raise Skip(f"ticket {ticket_id} is gone")
            customer = await uow.customers.get(ticket.customer_id)
            if customer is None or customer.erased_at is not None:
                raise Skip("the customer erased their data")
            identity = (
                await uow.customers.identity_by_id(ticket.identity_id)
                if ticket.identity_id is not None
                else None
            )
            language = None if staff else customer.language
            facts = Facts(ticket, customer, identity, language=language)
            agent_id = getattr(event, "agent_id", None) or ticket.assignee_id
            if agent_id is not None:
                agent = await uow.agents.get(agent_id)
                if agent is not None:
                    facts.agent, facts.agent_email = agent.name, agent.email
            fields: dict[str, Any] = {
                "reference": ticket.reference,
                "subject": ticket.subject,
                "agent": facts.agent or self.catalogue.text("notice.our_team", customer.language),
                "reopen_days": self.catalogue.text(
                    "duration.days", customer.language, n=self.reopen_days
                ),
                "where": self.catalogue.text("notice.where.here", customer.language),
            }
            if isinstance(event, ev.AgentReplied):
                message = await uow.tickets.message(event.message_id)
                if message is None:
                    raise Skip("the reply is gone")
                fields["body"] = message.body
                facts.files = [
                    str(a["stored_id"]) for a in message.attachments if a.get("stored_id")
                ]
            if kind == "queued":
                position = 0 if ticket.assignee_id else await uow.tickets.queue_position(ticket)
                fields["position"] = position
                fields["wait"] = human_wait(
                    position * self.minutes_per_ticket, self.catalogue, customer.language
                )
            facts.fields = fields
            if timeline:
                entries = await uow.tickets.timeline(ticket_id)
                shown = customer_timeline(entries, facts.agent, say_in(self.catalogue, language))
                facts.timeline = shown[-self.timeline_entries :]
        return facts
