"""What the services need from persistence, as protocols (fakes need no inheritance)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from core.events import Event
from core.files import StoredFile
from core.intents import ExampleEdit, LabelledText
from core.knowledge import (
    AgentAnswer,
    Article,
    ArticleQuery,
    ArticleStatus,
    ArticleText,
    ArticleVersion,
    Change,
    Gap,
)
from core.lifecycle import Status
from core.model import (
    Agent,
    Channel,
    ChannelIdentity,
    Conversation,
    Customer,
    Message,
    Ticket,
    TicketActivity,
)


class CustomerRepository(Protocol):
    async def get(self, customer_id: int) -> Customer | None: ...
    async def add(self, customer: Customer) -> Customer: ...
    async def identity(self, channel: Channel, external_id: str) -> ChannelIdentity | None: ...
    async def identity_by_id(self, identity_id: int) -> ChannelIdentity | None: ...
    async def add_identity(self, identity: ChannelIdentity) -> ChannelIdentity: ...


class AgentRepository(Protocol):
    async def get(self, agent_id: int) -> Agent | None: ...
    async def add(self, agent: Agent) -> Agent: ...
    async def list(self, *, active_only: bool = False) -> Sequence[Agent]: ...
    async def by_slack_user(self, slack_user_id: str) -> Agent | None: ...
    async def by_email(self, email: str) -> Agent | None: ...
    async def open_loads(self) -> dict[int, int]:
        """Open (new/open/waiting) tickets held by each agent id."""
        ...


class TicketRepository(Protocol):
    async def get(self, ticket_id: int) -> Ticket | None: ...
    async def add(self, ticket: Ticket) -> Ticket:
        """Save a new ticket; its id (and so its reference) is set on return."""
        ...

    async def add_message(self, message: Message) -> Message: ...
    async def add_activity(self, activity: TicketActivity) -> TicketActivity: ...
    async def message(self, message_id: int) -> Message | None: ...
    async def message_by_external_id(
        self, channel: Channel, external_id: str
    ) -> Message | None: ...
    async def timeline(self, ticket_id: int) -> Sequence[Message | TicketActivity]: ...
    async def for_customer(
        self, customer_id: int, *, active_only: bool = False
    ) -> Sequence[Ticket]: ...
    async def unassigned(self, limit: int) -> Sequence[Ticket]:
        """Active unassigned tickets, oldest first."""
        ...

    async def held_by(self, agent_id: int) -> Sequence[Ticket]:
        """Active tickets assigned to this agent."""
        ...

    async def resolved_before(self, moment: datetime, limit: int) -> Sequence[Ticket]: ...
    async def sla_breaches(self, now: datetime, limit: int) -> Sequence[Ticket]: ...
    async def unannounced_sla_breaches(self, now: datetime, limit: int) -> Sequence[Ticket]:
        """Breached active tickets whose breach has no `sla_breached:<kind>` activity yet."""
        ...

    async def queue_position(self, ticket: Ticket) -> int:
        """1 + how many active unassigned tickets were opened before this one."""
        ...


class ConversationRepository(Protocol):
    async def get(self, identity_id: int) -> Conversation | None: ...
    async def add(self, conversation: Conversation) -> Conversation: ...


@dataclass(frozen=True, slots=True)
class PersonalTraces:
    """What marks a row outside the domain objects as one customer's (erasure)."""

    customer_id: int
    ticket_ids: tuple[int, ...]
    identity_ids: tuple[int, ...]
    visitor_ids: tuple[str, ...]  # web-chat transcripts are keyed by the visitor
    emails: tuple[str, ...]
    # Identifiers and words of theirs that a raw platform payload may carry.
    needles: tuple[str, ...]
    # Their stored files: by the ids their tickets' messages name, and by who sent them.
    file_ids: tuple[str, ...] = ()
    file_owners: tuple[str, ...] = ()
    chat_ids: tuple[str, ...] = ()  # where platforms deliver to them (send pacing is by chat)


class ErasureRepository(Protocol):
    async def stored_files(self, traces: PersonalTraces) -> list[str]:
        """The ids of their stored files (erase_copies deletes the rows; the bytes of files
        kept in object storage go after commit, named in CustomerErased)."""
        ...

    async def erase_copies(self, traces: PersonalTraces) -> dict[str, int]:
        """Delete or blank every copy the domain objects do not hold (transcripts, raw
        payloads, codes, suppressions, conversation state); how many rows of each kind."""
        ...


class FileStore(Protocol):
    """Where attachments' bytes live, shared by every replica (core.files)."""

    async def put(self, file: StoredFile, content: bytes) -> StoredFile:
        """Keep `content`; a file already stored under the same id is kept as it was."""
        ...

    async def info(self, file_id: str) -> StoredFile | None: ...
    async def read(self, file_id: str) -> tuple[StoredFile, bytes] | None: ...


class Pacer(Protocol):
    """Send slots shared by every process (core.db.pacing)."""

    async def reserve(self, name: str, key: str, per_second: float, burst: int = 1) -> float:
        """Reserve the next send slot of `key`; the seconds to wait before sending."""
        ...


# --- the channels' bookkeeping: inbound deliveries, thread maps, reachability ------------


class Stage(enum.Enum):
    """What is left of an inbound delivery answered by a turn (core/db/inbox.py)."""

    NEW = "new"  # first delivery: run the turn
    RETRY = "retry"  # an earlier attempt failed before the turn's replies were stored
    ANSWERED = "answered"  # replies stored: send them (again)
    FINISHED = "finished"  # done or parked: nothing to do


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """An inbound delivery as `begin` finds it."""

    stage: Stage
    attempts: int = 0
    replies: tuple[dict[str, Any], ...] = ()  # as the turn stored them (Reply.to_json)
    sent: int = 0  # how many of `replies` are known to have gone out


class InboxRecords(Protocol):
    """Inbound deliveries under the platform's unique key, in the caller's transaction."""

    async def record(self, source: str, key: str, payload: dict[str, Any] | None = None) -> bool:
        """Record a delivery; False when the key was seen before (a redelivery)."""
        ...

    async def begin(self, source: str, key: str) -> InboxEntry:
        """Record a delivery answered by a turn (or one more attempt of it); what is left."""
        ...

    async def answered(
        self, source: str, key: str, replies: Sequence[dict[str, Any]], *, sent: int = 0
    ) -> None:
        """The turn's replies (as JSON), kept until they are known to be sent."""
        ...

    async def record_turn(
        self, source: str, key: str, replies: Sequence[dict[str, Any]] | None
    ) -> InboxEntry | None:
        """At the end of the turn that answers a delivery, in one statement: record it (or
        one more attempt of it) with the replies to keep until they are sent (None: none to
        keep). None when the delivery is answered or finished already: the turn must not
        commit."""
        ...

    async def status_of(self, source: str, key: str) -> str | None: ...
    async def payload_of(self, source: str, key: str) -> dict[str, Any] | None: ...
    async def mark(self, source: str, key: str, status: str, error: str | None = None) -> None:
        """Done, or parked with the reason it can never succeed."""
        ...

    async def claim(self, source: str, key: str, lease: timedelta) -> int | None:
        """Claim an unfinished delivery for `lease`: its attempt number, or None."""
        ...

    async def release(self, source: str, key: str) -> None: ...
    async def keep(self, source: str, key: str, payload: dict[str, Any]) -> None: ...
    async def pending(
        self, source: str, older_than: timedelta, limit: int
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Unfinished deliveries nobody holds, received before `older_than` ago."""
        ...


class Inbox(Protocol):
    """One source's deliveries answered by a turn, each step its own short transaction."""

    source: str

    async def begin(self, key: str) -> InboxEntry: ...
    async def answered(
        self, key: str, replies: Sequence[dict[str, Any]], *, sent: int = 0
    ) -> None: ...
    async def progress(
        self, key: str, replies: Sequence[dict[str, Any]], sent: int, error: str
    ) -> None: ...
    async def failed(self, key: str, error: str) -> None: ...
    async def done(self, key: str, note: str | None = None) -> None: ...
    async def park(self, key: str, reason: str, update: dict[str, Any] | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Thread:
    """A ticket's thread on the Slack desk."""

    ticket_id: int
    team_id: str
    channel_id: str
    thread_ts: str


class ThreadMap(Protocol):
    """One desk thread per ticket, found both ways, in the caller's transaction."""

    async def thread_of(self, ticket_id: int) -> Thread | None: ...
    async def ticket_of(self, team_id: str, channel_id: str, thread_ts: str) -> int | None: ...
    async def save(self, thread: Thread) -> None: ...


class Reachability(Protocol):
    """Whether Careline can write to a customer, each change its own short transaction."""

    async def mark(
        self,
        channel: Channel,
        reachable: bool,
        *,
        identity_id: int | None = None,
        chat_id: str | None = None,
        external_id: str | None = None,
    ) -> int:
        """Mark the identity found by exactly one of its keys; how many rows changed."""
        ...

    async def stop_texts(self, phone: str, texts: bool = False) -> int:
        """Texts to this verified number off (or on again); how many customers changed."""
        ...


class UnitOfWork(Protocol):
    """One transaction. `commit()` writes the recorded domain events to the outbox too."""

    # Read-only members, so implementations may hold more specific repository types.
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def agents(self) -> AgentRepository: ...
    @property
    def tickets(self) -> TicketRepository: ...
    @property
    def conversations(self) -> ConversationRepository: ...
    @property
    def erasure(self) -> ErasureRepository: ...
    @property
    def inbox(self) -> InboxRecords: ...
    @property
    def threads(self) -> ThreadMap: ...

    def emit(self, event: Event) -> None:
        """Record an event that belongs to no aggregate; written to the outbox at commit."""
        ...

    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...


# --- contact details (dialog engine area) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class EmailVerification:
    """A code mailed to an address the customer gave; the address is used once it is typed."""

    id: int
    customer_id: int
    email: str
    code: str
    attempts: int
    created_at: datetime
    expires_at: datetime
    verified_at: datetime | None = None
    kind: str = "email"  # or "phone": `email` then holds an E.164 number


class EmailVerificationRepository(Protocol):
    async def add(
        self,
        *,
        customer_id: int,
        email: str,
        code: str,
        created_at: datetime,
        expires_at: datetime,
        kind: str = "email",
    ) -> int:
        """Store a new code; returns its id."""
        ...

    async def get(self, verification_id: int) -> EmailVerification | None: ...
    async def latest_pending(
        self, customer_id: int, kind: str = "email"
    ) -> EmailVerification | None:
        """The newest not yet verified code of this customer, for an address of `kind`."""
        ...

    async def count_since(self, customer_id: int, moment: datetime) -> int: ...
    async def record_attempt(self, verification_id: int) -> None: ...
    async def mark_verified(self, verification_id: int, moment: datetime) -> None: ...
    async def forget(self, customer_id: int) -> None:
        """Delete every code of this customer (erasure)."""
        ...


class ContactUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also reaches the email verification codes."""

    @property
    def email_verifications(self) -> EmailVerificationRepository: ...


# --- rate limits (web chat, admin API) ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `hits` per fixed window of `seconds` for each key (an address, a visitor, an
    API key); `hits` 0 turns the limit off."""

    name: str  # which limit: one key can be counted under several
    hits: int
    seconds: int


class RateLimiter(Protocol):
    """Counts hits per (limit, key) in fixed windows; shared by every replica on PostgreSQL."""

    async def hit(self, limit: RateLimit, key: str) -> int:
        """Count one hit: 0 while it is within the limit, else the seconds until the
        window ends (the answer's `Retry-After`)."""
        ...


# --- knowledge base (admin API, dialog engine) -------------------------------------------


class KnowledgeRepository(Protocol):
    """Articles, their versions and the knowledge base's revision (core/knowledge.py)."""

    async def get(self, article_id: int) -> Article | None: ...
    async def by_key(self, language: str, key: str) -> Article | None: ...
    async def find(self, query: ArticleQuery) -> Sequence[Article]: ...
    async def published(self) -> Sequence[Article]:
        """Every published article, for the answer index."""
        ...

    async def add(
        self, text: ArticleText, *, status: ArticleStatus, by: str, now: datetime
    ) -> Article:
        """Save a new article at version 1; its id is set on return."""
        ...

    async def save(self, article: Article, *, previous_version: int) -> bool:
        """Write the article if it is still at `previous_version`; False if another change
        came first."""
        ...

    async def add_version(self, article: Article, change: Change) -> None: ...
    async def versions(self, article_id: int) -> Sequence[ArticleVersion]:
        """Newest first."""
        ...

    async def delete(self, article_id: int) -> None: ...
    async def revision(self) -> int:
        """Grows with every change to the published articles."""
        ...

    async def bump_revision(self) -> None: ...
    async def claim_seeding(self, now: datetime) -> bool:
        """True exactly once per database: the caller seeds the shipped articles."""
        ...

    async def count_feedback(self, article_id: int, version: int, *, helped: bool) -> None: ...
    async def add_gap(self, gap: Gap) -> None: ...
    async def gaps(self, *, since: datetime, language: str | None, limit: int) -> Sequence[Gap]:
        """Newest first."""
        ...

    async def answer_after(self, gap: Gap, *, within: timedelta) -> AgentAnswer | None:
        """The first agent reply on a ticket the customer opened within `within` of the gap."""
        ...


# --- intent examples (admin API, the classifier's training set) ----------------------------


class IntentExamplesRepository(Protocol):
    """The team's edits of the intents file and their revision (core/intents.py)."""

    async def edits(self) -> Sequence[ExampleEdit]:
        """Every edit, oldest first."""
        ...

    async def add(self, edit: ExampleEdit) -> None: ...
    async def delete(self, example: LabelledText) -> None:
        """Forget the edit of this example (added or removed)."""
        ...

    async def bump_revision(self) -> None: ...


# --- the dialog engine's turn (dialogs/engine.py) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A channel identity with its customer's contact facts and its conversation, if any."""

    identity_id: int
    customer_id: int
    chat_id: str
    customer_name: str
    language: str
    language_chosen: bool
    email: str | None
    email_verified: bool
    email_blocked: bool
    conversation_id: int | None
    state: str | None
    slots: dict[str, Any] | None
    history: list[dict[str, Any]] | None
    version: int | None


@dataclass(frozen=True, slots=True)
class TicketRecord:
    id: int
    subject: str
    status: Status
    created_at: datetime
    resolved_at: datetime | None
    assignee_id: int | None
    csat_score: int | None


class DialogStore(Protocol):
    """A turn's reads and writes of who is writing and where their conversation stands
    (core.db.repositories.SqlDialogStore: a few prepared statements on the hot path)."""

    async def load(self, channel: Channel, external_id: str) -> TurnRecord | None: ...
    async def register(
        self,
        *,
        channel: Channel,
        external_id: str,
        chat_id: str,
        display_name: str,
        language: str,
        now: datetime,
    ) -> TurnRecord:
        """First contact: a new customer (everything else as a new Customer has it) and
        their identity; the conversation is written by the turn's `save_conversation`."""
        ...

    async def move_chat(self, identity_id: int, chat_id: str) -> None: ...
    async def tickets(self, customer_id: int, limit: int) -> list[TicketRecord]: ...
    async def save_conversation(
        self,
        identity_id: int,
        conversation_id: int | None,
        version: int,
        *,
        state: str,
        slots: dict[str, Any],
        history: list[dict[str, Any]],
        now: datetime,
    ) -> bool:
        """Write the state if nobody else did since `version` was read; False if they did.
        `conversation_id` None (the identity's first turn) inserts the conversation."""
        ...


class DialogUnitOfWork(ContactUnitOfWork, Protocol):
    """One turn's transaction: the services' repositories, the conversation store and the
    knowledge base."""

    @property
    def dialogs(self) -> DialogStore: ...
    @property
    def knowledge(self) -> KnowledgeRepository: ...


class Transactions(Protocol):
    """Where a turn's units of work come from (core.db.database.Database)."""

    #: What a lost race between two writers raises: the turn is run again.
    races: tuple[type[Exception], ...]

    def uow(self) -> AbstractAsyncContextManager[DialogUnitOfWork]: ...
