"""Domain events: facts in the past tense, carrying ids only.

They are recorded on the aggregates and written to the outbox in the same transaction as the
change, so a crash after commit can never lose one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    registry: ClassVar[dict[str, type[Event]]] = {}

    def __init_subclass__(cls) -> None:
        # No super() call: slots=True rebuilds the class, which breaks zero-argument super().
        Event.registry[cls.__name__] = cls

    @property
    def name(self) -> str:
        return type(self).__name__

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_payload(name: str, payload: dict[str, Any]) -> Event:
        cls = Event.registry[name]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})


@dataclass(frozen=True, slots=True)
class TicketOpened(Event):
    ticket_id: int


@dataclass(frozen=True, slots=True)
class TicketAssigned(Event):
    ticket_id: int
    agent_id: int
    previous_agent_id: int | None = None


@dataclass(frozen=True, slots=True)
class TicketUnassigned(Event):
    ticket_id: int
    previous_agent_id: int


@dataclass(frozen=True, slots=True)
class TicketStatusChanged(Event):
    ticket_id: int
    old_status: str
    new_status: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TicketPriorityChanged(Event):
    ticket_id: int
    old_priority: str
    new_priority: str


@dataclass(frozen=True, slots=True)
class CustomerWrote(Event):
    ticket_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class AgentReplied(Event):
    ticket_id: int
    message_id: int
    agent_id: int


@dataclass(frozen=True, slots=True)
class AgentSentFile(Event):
    """One file of an agent's reply, for the customer's chat: one event per file, so each is
    delivered once (core.files)."""

    ticket_id: int
    message_id: int
    agent_id: int
    stored_id: str


@dataclass(frozen=True, slots=True)
class NoteAdded(Event):
    ticket_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class TicketRated(Event):
    ticket_id: int
    score: int


@dataclass(frozen=True, slots=True)
class HumanRequested(Event):
    ticket_id: int


@dataclass(frozen=True, slots=True)
class NoticeUndelivered(Event):
    """The platform reported after the fact that a chat notice never reached the customer (a
    text undelivered): the customer is told by email instead. `event_id` and `handler` name
    the delivery that failed."""

    ticket_id: int
    event_id: int
    handler: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SlaBreached(Event):
    ticket_id: int
    kind: str  # "first_response" or "resolution"


@dataclass(frozen=True, slots=True)
class EmailVerificationRequested(Event):
    customer_id: int
    verification_id: int


@dataclass(frozen=True, slots=True)
class StaffInvited(Event):
    """Someone was invited to the console: the relay mails them their link."""

    invitation_id: int


@dataclass(frozen=True, slots=True)
class PhoneVerificationRequested(Event):
    customer_id: int
    verification_id: int


@dataclass(frozen=True, slots=True)
class CustomerErased(Event):
    customer_id: int
    # Their stored files (core.files): a store that keeps bytes outside the database deletes
    # them after the erasure commits.
    file_ids: tuple[str, ...] = ()
