"""The ticket domain as plain dataclasses. SQLAlchemy is mapped onto them in core/db."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from core.errors import InvalidInput
from core.events import Event
from core.lifecycle import ACTIVE_STATUSES, Status, check_move

__all__ = [
    "Agent",
    "Author",
    "Availability",
    "Channel",
    "ChannelIdentity",
    "Conversation",
    "Customer",
    "Message",
    "Notify",
    "Priority",
    "Status",
    "Ticket",
    "TicketActivity",
    "reference_of",
    "ticket_id_from_reference",
    "utcnow",
]

REFERENCE_PREFIX = "CR-"
REFERENCE_OFFSET = 1000
DEFAULT_LANGUAGE = "en"


def base_language(code: str | None) -> str:
    """`pt-BR`, `PT_br` -> `pt`: the language a customer is answered and routed by."""
    found = (code or "").strip().lower().replace("_", "-").split("-")[0]
    return found or DEFAULT_LANGUAGE


#: The largest id accepted from outside: the largest integer JSON tools agree on (2**53 - 1),
#: far beyond any real id, and it keeps an id from overflowing BIGINT in the driver.
MAX_ID = 2**53 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class Channel(StrEnum):
    TELEGRAM = "telegram"
    SLACK = "slack"
    WEBCHAT = "webchat"
    TERMINAL = "terminal"
    EMAIL = "email"
    API = "api"
    CONSOLE = "console"  # the staff's web console
    SMS = "sms"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Availability(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


class Author(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    BOT = "bot"
    NOTE = "note"  # an internal note: never shown to the customer


class Notify(StrEnum):
    CHAT = "chat"
    EMAIL = "email"
    BOTH = "both"


def reference_of(ticket_id: int) -> str:
    return f"{REFERENCE_PREFIX}{ticket_id + REFERENCE_OFFSET}"


def ticket_id_from_reference(reference: str) -> int | None:
    """`CR-1042` -> 42; anything that is not a reference -> None."""
    text = reference.strip().upper()
    if not text.startswith(REFERENCE_PREFIX):
        return None
    digits = text[len(REFERENCE_PREFIX) :]
    if not digits.isdigit() or int(digits) <= REFERENCE_OFFSET:
        return None
    return int(digits) - REFERENCE_OFFSET


class Aggregate:
    """Something that records domain events; the unit of work writes them to the outbox."""

    events: list[Event]

    def record(self, event: Event) -> None:
        try:
            self.events.append(event)
        except AttributeError:  # loaded from the database: __init__ did not run
            self.events = [event]

    def pull_events(self) -> list[Event]:
        pending = getattr(self, "events", [])
        self.events = []
        return pending


@dataclass(eq=False)
class ChannelIdentity:
    """One way to reach a customer: a Telegram user, a Slack user, a web-chat visitor."""

    channel: Channel
    external_id: str  # the platform's user id
    chat_id: str  # where replies go (Telegram chat, Slack DM channel, web-chat visitor)
    display_name: str = ""
    reachable: bool = True  # False once the platform says we may not write (Telegram 403)
    customer_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None


@dataclass(eq=False)
class Customer(Aggregate):
    display_name: str
    language: str = "en"
    language_chosen: bool = False  # picked with /language: detection leaves it alone
    email: str | None = None
    email_verified: bool = False
    email_blocked: bool = False  # bounced or spam report: no more mail
    phone: str | None = None
    notify: Notify = Notify.BOTH
    phone_verified: bool = False  # `phone` confirmed by a texted code
    texts: bool = False  # notices also by text to the verified phone (customers of other chats)
    calls: bool = False  # opted in to a phone call about urgent news (SMS customers)
    created_at: datetime = field(default_factory=utcnow)
    erased_at: datetime | None = None
    identities: list[ChannelIdentity] = field(default_factory=list)
    id: int | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @property
    def can_receive_email(self) -> bool:
        return bool(self.email) and self.email_verified and not self.email_blocked

    def identity(self, channel: Channel) -> ChannelIdentity | None:
        return next((i for i in self.identities if i.channel == channel), None)


@dataclass(eq=False)
class Agent(Aggregate):
    name: str
    email: str
    slack_user_id: str | None = None
    skills: list[str] = field(default_factory=list)  # categories this agent can take
    # Languages the agent answers customers in (ISO 639-1); none: the default language only.
    languages: list[str] = field(default_factory=list)
    capacity: int = 5  # most open tickets at once
    active: bool = True
    availability: Availability = Availability.AVAILABLE
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    def can_take(self, category: str) -> bool:
        return not self.skills or category in self.skills

    def speaks(self, language: str) -> bool:
        return language in (self.languages or [DEFAULT_LANGUAGE])


@dataclass(eq=False)
class Ticket(Aggregate):
    customer_id: int
    subject: str
    description: str
    category: str
    priority: Priority = Priority.NORMAL
    channel: Channel = Channel.WEBCHAT  # where the customer is answered
    identity_id: int | None = None  # the channel identity that opened it
    language: str = "en"  # the customer's (ISO 639-1), for routing and the agents' view
    status: Status = Status.NEW
    assignee_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    csat_score: int | None = None
    csat_comment: str | None = None
    human_requested: bool = False
    version: int = 0  # optimistic concurrency, bumped by the mapper on every update
    id: int | None = None
    events: list[Event] = field(default_factory=list, repr=False)

    @property
    def reference(self) -> str:
        if self.id is None:
            raise InvalidInput("the ticket has no reference before it is saved")
        return reference_of(self.id)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def move_to(self, target: Status, now: datetime) -> Status:
        """Apply one lifecycle move and stamp the times it implies; return the old status."""
        old = self.status
        check_move(old, target)
        self.status = target
        self.updated_at = now
        if target == Status.RESOLVED:
            self.resolved_at = now
        elif target == Status.CLOSED:
            self.closed_at = now
        elif old == Status.RESOLVED:  # reopened
            self.resolved_at = None
        return old


@dataclass(eq=False)
class Message:
    """One entry of a ticket's conversation: customer, agent, bot or internal note."""

    ticket_id: int
    author: Author
    body: str
    channel: Channel | None = None
    external_id: str | None = None  # the platform's message id, unique per channel
    agent_id: int | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    delivered_id: str | None = None  # provider message id of our outbound copy
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None


@dataclass(eq=False)
class TicketActivity:
    """A non-message timeline entry: status changes, assignments, priority, rating."""

    ticket_id: int
    kind: str
    actor: str  # "customer", "agent:<id>", "system", "admin:<name>"
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None


@dataclass(eq=False)
class Conversation:
    """Dialog state for one channel identity. The dialog engine owns its meaning."""

    identity_id: int
    state: str = "idle"
    slots: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # recent turns, for summaries
    updated_at: datetime = field(default_factory=utcnow)
    version: int = 0
    id: int | None = None
