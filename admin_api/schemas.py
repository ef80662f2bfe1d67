"""Request and response models of the admin API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from core.lifecycle import Status
from core.model import MAX_ID, Availability, Channel, Notify, Priority

# PostgreSQL text cannot hold NUL; refuse it at the edge rather than fail in the driver.
NO_NUL = r"^[^\x00]*$"
# Some text: no NUL and at least one character that is not white space (white space around
# it is stripped, so "\r" alone would be empty: the document says so, not only the server).
SOME_TEXT = r"^[^\x00]*[^\x00\s][^\x00]*$"


def words(max_length: int) -> StringConstraints:
    """Stripped, not blank, at most `max_length` characters: names, tags, titles."""
    return StringConstraints(
        strip_whitespace=True, min_length=1, max_length=max_length, pattern=SOME_TEXT
    )


def _not_a_number(value: object) -> object:
    # Pydantic would read "1700000000" or "-1.3e-217" as a Unix time; the API documents
    # ISO 8601 only.
    if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
        raise ValueError("give an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _utc(value: datetime) -> datetime:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


def _whole_number(value: object) -> object:
    # JSON Schema's "integer" is any number with no fraction: 21.0 is 21 (and the OpenAPI
    # document promises that). 21.5, "21" and true stay refused by the strict check after.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
# JSON bodies are read strictly for numbers and booleans: "5" is not 5, 0 is not false.
WholeNumber = Annotated[int, Field(strict=True), BeforeValidator(_whole_number)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True), BeforeValidator(_whole_number)]
# Bounds inside the type: on an optional field, Field(ge=, le=) would reach the OpenAPI as
# the non-keywords "ge"/"le" and leave the bounds undocumented.
Capacity = Annotated[int, Field(ge=0, le=1000, strict=True), BeforeValidator(_whole_number)]
UtcDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_utc)]
Name = Annotated[str, words(200)]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320,
                                         pattern=r"^[^\x00@\s]+@[^\x00@\s]+$")]  # fmt: skip
SlackUserId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,30}$")]
Skill = Annotated[str, words(64)]
# A language tag (`es`, `pt-BR`); agents and tickets keep its language part (`pt`).
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,3}$",
                                            max_length=16)]  # fmt: skip
Body = Annotated[str, StringConstraints(min_length=1, max_length=20_000, pattern=NO_NUL)]
Reason = Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)]


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    """A request body: unknown fields are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


# --- callers and keys ------------------------------------------------------------------


class CallerOut(Out):
    key_id: int | None
    name: str
    role: Literal["admin", "agent"]
    agent_id: int | None


KeyName = Annotated[str, words(100)]


class AdminKeyIn(In):
    name: KeyName
    role: Literal["admin"]
    agent_id: None = None  # an admin key acts as no agent


class AgentKeyIn(In):
    name: KeyName
    role: Literal["agent"]
    agent_id: BodyId


# One shape per role, so the OpenAPI says which role takes an agent_id.
KeyIn = Annotated[AdminKeyIn | AgentKeyIn, Field(discriminator="role")]


class KeyOut(Out):
    id: int
    name: str
    role: str
    prefix: str
    agent_id: int | None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class NewKeyOut(KeyOut):
    key: str = Field(description="The secret. Shown this once; only its hash is stored.")


# --- agents ----------------------------------------------------------------------------


class AgentIn(In):
    name: Name
    email: Email
    slack_user_id: SlackUserId | None = None
    skills: list[Skill] = Field(default_factory=list, max_length=50)
    languages: list[Language] = Field(
        default_factory=list,
        max_length=50,
        description="Languages the agent answers in; none: the default language (en). "
        "Auto-assignment gives a ticket to an agent who speaks its customer's language.",
    )
    capacity: Capacity = 5
    availability: Availability = Availability.AVAILABLE


class AgentPatch(In):
    """Only the fields sent change; `slack_user_id: null` unlinks Slack."""

    name: Name | None = None
    slack_user_id: SlackUserId | None = None
    skills: list[Skill] | None = Field(None, max_length=50)
    languages: list[Language] | None = Field(None, max_length=50)
    capacity: Capacity | None = None
    availability: Availability | None = None


class DeactivateIn(In):
    reassign_to: BodyId | None = Field(
        None, description="Move the agent's open tickets to this agent first."
    )


class AgentOut(Out):
    id: int
    name: str
    email: str
    slack_user_id: str | None
    skills: list[str]
    languages: list[str]
    capacity: int
    active: bool
    availability: Availability
    created_at: datetime
    open_tickets: int = 0


# --- tickets ---------------------------------------------------------------------------


class TicketSummary(Out):
    id: int
    reference: str
    subject: str
    category: str
    priority: Priority
    status: Status
    channel: Channel
    language: str = Field(description="The customer's language (ISO 639-1).")
    customer_id: int
    assignee_id: int | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    sla_breached: bool


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")


class TimelineEntry(BaseModel):
    type: Literal["message", "activity"]
    id: int
    created_at: datetime
    author: str | None = None  # messages: customer, agent, bot, note
    body: str | None = None
    channel: str | None = None
    agent_id: int | None = None
    attachments: list[dict[str, Any]] | None = None
    kind: str | None = None  # activities: status_changed, assigned, ...
    actor: str | None = None
    detail: dict[str, Any] | None = None


class FileLink(BaseModel):
    """A short-lived signed link to one stored attachment (GET it without a key)."""

    url: str = Field(description="Path on this server: `/files/{id}?expires=…&signature=…`.")
    expires_at: datetime
    name: str
    mime_type: str
    size: int


class TicketDetail(TicketSummary):
    description: str
    closed_at: datetime | None
    csat_score: int | None
    csat_comment: str | None
    human_requested: bool
    timeline: list[TimelineEntry]


class AssignIn(In):
    agent_id: BodyId
    force: StrictBool = Field(False, description="Skip the active and capacity checks.")


class StatusIn(In):
    status: Status
    reason: Reason = ""


class PriorityIn(In):
    priority: Priority


class NoteIn(In):
    body: Body


class ReplyIn(In):
    body: Body
    agent_id: BodyId | None = Field(
        None,
        description="Who answers. Admin keys must name the agent; agent keys answer as "
        "their own agent.",
    )


class MessageOut(Out):
    id: int
    ticket_id: int
    author: str
    body: str
    channel: str | None
    agent_id: int | None
    created_at: datetime


class AutoAssignIn(In):
    limit: WholeNumber = Field(100, ge=1, le=1000)


class Assignment(BaseModel):
    ticket_id: int
    reference: str
    agent_id: int


class AutoAssignOut(BaseModel):
    assigned: list[Assignment]


class AutoAssignSwitch(In):
    enabled: StrictBool


# --- customers -------------------------------------------------------------------------


class IdentityOut(Out):
    id: int
    channel: Channel
    display_name: str
    reachable: bool


class CustomerOut(Out):
    id: int
    display_name: str
    language: str
    email: str | None
    email_verified: bool
    email_blocked: bool
    phone: str | None
    notify: Notify
    created_at: datetime
    erased_at: datetime | None
    identities: list[IdentityOut]


# --- dead letters ----------------------------------------------------------------------


class DeadLetter(BaseModel):
    id: int
    event_id: int
    event_type: str
    handler: str
    status: str
    attempts: int
    last_error: str | None
    updated_at: datetime
    ticket_id: int | None
    created_at: datetime


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None = None


# --- reports ---------------------------------------------------------------------------


class AgentReportRow(BaseModel):
    agent_id: int
    name: str
    open: int
    resolved: int
    mean_first_response_seconds: float | None
    mean_resolution_seconds: float | None
    csat: float | None
    csat_responses: int


class CategoryReportRow(BaseModel):
    category: str
    priority: Priority
    opened: int
    resolved: int
    open: int
    mean_resolution_seconds: float | None
    sla_missed: int  # of the opened: answered or resolved after the due time, or still past it
    csat: float | None
    csat_responses: int


class DailyReportRow(BaseModel):
    day: date
    opened: int
    resolved: int


class AgentReport(BaseModel):
    since: datetime
    until: datetime
    rows: list[AgentReportRow]


class CategoryReport(BaseModel):
    since: datetime
    until: datetime
    rows: list[CategoryReportRow]


class DailyReport(BaseModel):
    since: datetime
    until: datetime
    rows: list[DailyReportRow]
