"""The values the pure policy reads and returns: state, context, what to say, what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core.knowledge import GapReason
from core.lifecycle import ACTIVE_STATUSES, Status
from core.model import Notify, Priority
from core.ports import EmailVerification
from dialogs.config import DialogConfig

# --- button values the policy reads back ----------------------------------------------

#: A ticket's details: `ticket:<id>` (the policy's own status list).
TICKET_CHOICE = "ticket:"
#: A rating: `rate:<ticket id or reference>[:<score 1-5>]`; the relay's resolution notice
#: sends one button per score, with the ticket's reference.
RATE_CHOICE = "rate:"
SCORES = (1, 2, 3, 4, 5)


def rate_choice(ticket: int | str, score: int | None = None) -> str:
    """The value of a rating button (`rate:CL-7:4`), short enough for Telegram's 64 bytes."""
    return f"{RATE_CHOICE}{ticket}" + (f":{score}" if score is not None else "")


def read_rate_choice(value: str) -> tuple[str | None, int | None]:
    """`rate:CL-7:4` -> ("CL-7", 4); the ticket is None when the value names none, the score
    None when it is missing or not 1-5."""
    parts = value.removeprefix(RATE_CHOICE).split(":")
    ticket = parts[0] or None
    score = int(parts[1]) if len(parts) == 2 and parts[1] in {str(n) for n in SCORES} else None
    return ticket, score


# --- what the policy reads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialogState:
    """The conversation as stored: a state name, its slots, and recent turns."""

    name: str = "idle"
    slots: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[Mapping[str, str], ...] = ()

    def slot(self, name: str, default: Any = None) -> Any:
        return self.slots.get(name, default)


@dataclass(frozen=True, slots=True)
class TicketView:
    id: int
    reference: str
    subject: str
    status: Status
    created_at: datetime
    resolved_at: datetime | None = None
    assignee_id: int | None = None
    rated: bool = False

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class CustomerView:
    name: str = ""
    email: str | None = None
    can_receive_email: bool = False
    notify: Notify = Notify.BOTH  # how they chose to hear from us (read while filing a ticket)
    phone: str | None = None  # their verified phone, read for /phone
    texts: bool = False  # notices also go there by text


class FaqAnswers(Protocol):
    def answer(self, intent: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Passage:
    """A paragraph of a published article, quoted verbatim, and where it comes from."""

    text: str
    title: str
    article_id: int
    version: int
    confidence: float  # 0-1: how much of the question the article covers
    confident: bool  # at or above the threshold: answer; below: say so and offer a person


class KnowledgeAnswers(Protocol):
    """The published articles in the customer's language (dialogs/knowledge.py)."""

    def find(self, question: str, intent: str) -> Passage | None:
        """The best passage for the question (the article keyed by `intent`, the NLU's
        FAQ intent, unless the question's words fit another better); None when no article
        shares a word with it."""
        ...


@dataclass(frozen=True, slots=True)
class Context:
    """Facts loaded for this turn, so that `decide` needs no I/O."""

    now: datetime
    config: DialogConfig
    customer: CustomerView = field(default_factory=CustomerView)
    tickets: tuple[TicketView, ...] = ()  # newest first
    faq: FaqAnswers | None = None
    knowledge: KnowledgeAnswers | None = None
    verification: EmailVerification | None = None  # the pending code, while one is asked
    #: The languages the bot speaks, (code, name in that language), for /language.
    languages: Sequence[tuple[str, str]] = (("en", "English"),)

    def ticket(self, ticket_id: Any) -> TicketView | None:
        return next((t for t in self.tickets if t.id == ticket_id), None)

    def recently_resolved(self) -> TicketView | None:
        window = self.config.reopen_window
        return next(
            (
                t
                for t in self.tickets
                if t.status == Status.RESOLVED
                and t.resolved_at is not None
                and self.now - t.resolved_at <= window
            ),
            None,
        )

    def unrated(self) -> TicketView | None:
        return next(
            (
                t
                for t in self.tickets
                if t.status in (Status.RESOLVED, Status.CLOSED) and not t.rated
            ),
            None,
        )


# --- what the policy returns -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Option:
    """One choice offered: its value, and a label from the catalogue or given literally."""

    value: str
    key: str | None = None
    label: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Phrase:
    """A catalogue text used as a parameter of another (a tuple of them becomes lines)."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    fallback: str | None = None  # shown when no language has the key (custom categories)


@dataclass(frozen=True, slots=True)
class Say:
    """A catalogue text to send, with its parameters and choices."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()


class Action:
    """Something the engine does through the domain services in the turn's transaction.

    OpenTicket, AddToTicket and RequestHuman hand the conversation over: the customer's
    next messages go to that ticket until it is no longer active.
    """


@dataclass(frozen=True, slots=True)
class OpenTicket(Action):
    description: str
    category: str
    priority: Priority
    attachments: tuple[Mapping[str, Any], ...] = ()
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class AddToTicket(Action):
    ticket_id: int
    text: str
    attachments: tuple[Mapping[str, Any], ...] = ()
    external_id: str | None = None


@dataclass(frozen=True, slots=True)
class RequestHuman(Action):
    """Hand `ticket_id` (or a new ticket described by the customer's own `description`, if
    they gave any) to a person; `summary` is the conversation so far, as a note for the agent."""

    ticket_id: int | None
    summary: str
    description: str


@dataclass(frozen=True, slots=True)
class RateTicket(Action):
    ticket_id: int
    score: int


@dataclass(frozen=True, slots=True)
class CommentOnRating(Action):
    ticket_id: int
    comment: str


@dataclass(frozen=True, slots=True)
class ShowTicket(Action):
    ticket_id: int


@dataclass(frozen=True, slots=True)
class ExportData(Action):
    pass


@dataclass(frozen=True, slots=True)
class EraseData(Action):
    pass


@dataclass(frozen=True, slots=True)
class RequestEmailCode(Action):
    email: str


@dataclass(frozen=True, slots=True)
class ConfirmEmailCode(Action):
    typed: str


@dataclass(frozen=True, slots=True)
class SetNotify(Action):
    notify: Notify


@dataclass(frozen=True, slots=True)
class RateAnswer(Action):
    """The customer's "did that help?" about the article version they were answered from."""

    article_id: int
    version: int
    helped: bool


@dataclass(frozen=True, slots=True)
class RequestPhoneCode(Action):
    phone: str  # E.164


@dataclass(frozen=True, slots=True)
class ConfirmPhoneCode(Action):
    typed: str


@dataclass(frozen=True, slots=True)
class SetTexts(Action):
    """Notices also by text to the verified phone (or no longer)."""

    texts: bool


@dataclass(frozen=True, slots=True)
class SetCalls(Action):
    """Call the customer about urgent news (or stop)."""

    calls: bool


@dataclass(frozen=True, slots=True)
class SetLanguage(Action):
    """Answer in this language from now on; `chosen`: the customer picked it."""

    language: str
    chosen: bool = True


@dataclass(frozen=True, slots=True)
class NoteGap(Action):
    """A question the bot could not answer, kept for the admins' list of knowledge gaps."""

    question: str
    reason: GapReason
    article_id: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    state: DialogState
    says: tuple[Say, ...] = ()
    actions: tuple[Action, ...] = ()
    #: Keep offering the previous choices (the input was refused, not answered).
    keep_options: bool = False
