"""Block Kit and text for the agents' desk, plus the desk's small grammars (note rule, `/careline`).

Pure functions over plain values: no Slack SDK, no database, so they are easy to read and test.
Every message carries a readable `text` as well as blocks (Slack shows it in notifications and
where blocks cannot be rendered).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from babel import Locale, UnknownLocaleError

from core.files import human_size
from core.lifecycle import Status
from core.model import Priority
from dialogs.turn import Reply

Block = dict[str, Any]

MARKER_PREFIX = "cl:"  # block_id prefix marking a message as ours, keyed by its delivery
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
ACTIONS_BLOCK_PREFIX = "ticket:"

# action ids of the root message's controls
CLAIM, ASSIGN, PRIORITY, RESOLVE, CLOSE, REOPEN = (
    "ticket_claim",
    "ticket_assign",
    "ticket_priority",
    "ticket_resolve",
    "ticket_close",
    "ticket_reopen",
)
CHOICE_PREFIX = "choice:"  # action ids of a customer's reply buttons in a DM


@dataclass(frozen=True, slots=True)
class TicketCard:
    """What the root message of a ticket's thread shows."""

    reference: str
    subject: str
    customer: str  # display name only: no email, phone or platform ids
    category: str
    priority: Priority
    status: Status
    language: str = "en"  # the customer's (ISO 639-1)
    assignee: str | None = None  # agent name
    assignee_slack_id: str | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    responded: bool = False
    attachments: tuple[str, ...] = ()  # mrkdwn, escaped: see `attachment_text`


# --- text ------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def language_name(code: str) -> str:
    """`es` -> `Spanish (es)`: how agents read a customer's language."""
    try:
        name = Locale("en").languages.get(code)
    except (ValueError, UnknownLocaleError):
        name = None
    return f"{name} ({code})" if name else escape(code)


def slack_date(moment: datetime) -> str:
    """A date every reader sees in their own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def who(card: TicketCard) -> str:
    if card.assignee_slack_id:
        return f"<@{card.assignee_slack_id}>"
    return escape(card.assignee) if card.assignee else "_unassigned_"


def sla_due(card: TicketCard) -> str:
    if card.status in (Status.RESOLVED, Status.CLOSED):
        return "—"
    if not card.responded and card.first_response_due is not None:
        return f"first response by {slack_date(card.first_response_due)}"
    if card.resolution_due is not None:
        return f"resolution by {slack_date(card.resolution_due)}"
    return "—"


def root_text(card: TicketCard) -> str:
    assignee = card.assignee or "unassigned"
    return (
        f"{card.reference} · {card.subject} — {card.status.value}, {card.priority.value} "
        f"priority, {assignee}"
    )


# --- blocks ----------------------------------------------------------------------------


def marker_block_id(marker: str) -> str:
    return clip(MARKER_PREFIX + marker, 255)


def has_marker(message: dict[str, Any], marker: str) -> bool:
    """Whether a message Slack returned is the one we posted under `marker`."""
    wanted = marker_block_id(marker)
    return any(b.get("block_id") == wanted for b in message.get("blocks") or [])


def _plain(text: str, limit: int = BUTTON_TEXT_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int = SECTION_LIMIT) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": clip(text or " ", limit)}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(label),
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def controls(card: TicketCard) -> list[Block]:
    """The buttons a ticket in this status offers."""
    ref = card.reference
    active = card.status in (Status.NEW, Status.OPEN, Status.WAITING)
    elements: list[Block] = []
    if active:
        if card.assignee is None:
            elements.append(_button(CLAIM, "Claim", ref, "primary"))
        elements.append(
            {
                "type": "users_select",
                "action_id": ASSIGN,
                "placeholder": _plain("Assign to…"),
                **({"initial_user": card.assignee_slack_id} if card.assignee_slack_id else {}),
            }
        )
        elements.append(
            {
                "type": "static_select",
                "action_id": PRIORITY,
                "placeholder": _plain("Priority"),
                "options": [
                    {"text": _plain(p.value.title()), "value": f"{ref}:{p.value}"} for p in Priority
                ],
            }
        )
        elements.append(_button(RESOLVE, "Resolve", ref))
    if card.status == Status.RESOLVED:
        elements.append(_button(REOPEN, "Reopen", ref))
    if card.status != Status.CLOSED:
        elements.append(_button(CLOSE, "Close", ref, "danger"))
    if not elements:
        return []
    # The block id carries the reference too: selects have no value of their own.
    return [{"type": "actions", "block_id": ACTIONS_BLOCK_PREFIX + ref, "elements": elements}]


def root_blocks(card: TicketCard, marker: str | None = None) -> list[Block]:
    header: Block = {
        "type": "header",
        "text": _plain(f"{card.reference} · {card.subject}", HEADER_LIMIT),
    }
    if marker:
        header["block_id"] = marker_block_id(marker)
    fields = [
        _mrkdwn(f"*Customer*\n{escape(card.customer) or '—'}", 2000),
        _mrkdwn(f"*Category*\n{escape(card.category)}", 2000),
        _mrkdwn(f"*Language*\n{language_name(card.language)}", 2000),
        _mrkdwn(f"*Priority*\n{card.priority.value}", 2000),
        _mrkdwn(f"*Status*\n{card.status.value}", 2000),
        _mrkdwn(f"*Assignee*\n{who(card)}", 2000),
        _mrkdwn(f"*SLA due*\n{sla_due(card)}", 2000),
    ]
    blocks: list[Block] = [header, {"type": "section", "fields": fields}]
    if card.attachments:
        names = ", ".join(card.attachments)
        blocks.append({"type": "context", "elements": [_mrkdwn(f":paperclip: {names}")]})
    return blocks + controls(card)


def note_blocks(text: str, marker: str | None = None) -> list[Block]:
    """One mrkdwn section; the marker lets us find it again after a timed-out post."""
    block: Block = {"type": "section", "text": _mrkdwn(text)}
    if marker:
        block["block_id"] = marker_block_id(marker)
    return [block]


def customer_message_text(
    customer: str,
    body: str,
    attachments: list[dict[str, Any]],
    link: Callable[[str], str | None] | None = None,
) -> str:
    """The customer's words quoted, and each file: a download link when it is stored and the
    server knows its public address (`link`), else its name."""
    lines = [f"*{escape(customer or 'Customer')}* wrote:"]
    if body.strip():
        lines.append("\n".join(f"> {escape(line)}" for line in body.splitlines()) or ">")
    for attachment in attachments:
        lines.append(":paperclip: " + attachment_text(attachment, link))
    return "\n".join(lines)


def attachment_text(
    attachment: Mapping[str, Any], link: Callable[[str], str | None] | None = None
) -> str:
    """`<url|report.pdf> (PDF, 12 KB)`, or the name alone when there is no link to give."""
    name = escape(str(attachment.get("name") or attachment.get("kind") or "file"))
    stored = attachment.get("stored_id")
    url = link(str(stored)) if link is not None and stored else None
    shown = f"<{url}|{name}>" if url else name
    facts = [kind for kind in [_kind(attachment.get("mime_type"))] if kind]
    if isinstance(attachment.get("size"), int):
        facts.append(human_size(int(attachment["size"])))
    if not stored:
        facts.append("not kept")
    return shown + (f" ({', '.join(facts)})" if facts else "")


def _kind(mime_type: Any) -> str:
    mime = str(mime_type or "")
    if mime == "application/pdf":
        return "PDF"
    if mime.startswith("image/"):
        return mime.removeprefix("image/").upper().replace("JPEG", "JPEG photo")
    if mime.startswith("audio/"):
        return "audio"
    return "text" if mime.startswith("text/") else ""


def reply_blocks(reply: Reply, marker: str | None = None) -> list[Block]:
    """A customer-facing reply: its text, and its choices as buttons (the marker finds it)."""
    section: Block = {"type": "section", "text": _mrkdwn(escape(reply.text))}
    if marker:
        section["block_id"] = marker_block_id(marker)
    blocks: list[Block] = [section]
    if reply.choices:
        blocks.append(
            {
                "type": "actions",
                "block_id": "choices",
                "elements": [
                    _button(f"{CHOICE_PREFIX}{i}", c.label, c.value)
                    for i, c in enumerate(reply.choices[:25])
                ],
            }
        )
    return blocks


# --- grammars --------------------------------------------------------------------------

NOTE_PREFIX = re.compile(r"^\s*note\s*:\s*", re.IGNORECASE)


def split_note(text: str) -> tuple[bool, str]:
    """The note rule: `note: ...` stays internal; any other thread reply goes to the customer."""
    match = NOTE_PREFIX.match(text)
    if match:
        return True, text[match.end() :].strip()
    return False, text.strip()


USER_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
REFERENCE = re.compile(r"^CR-\d+$", re.IGNORECASE)
VERBS = ("help", "status", "claim", "assign", "priority", "resolve", "close", "reopen", "note")


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed `/careline` invocation."""

    verb: str
    reference: str | None = None
    argument: str = ""  # note text, priority, or the raw assignee
    user_id: str | None = None  # the mentioned Slack user, for assign
    problem: str | None = None  # why it could not be parsed


HELP = "\n".join(
    [
        "*/careline* commands:",
        "• `status CR-1042` — the ticket at a glance",
        "• `claim CR-1042` — take it yourself",
        "• `assign CR-1042 @someone` — give it to an agent",
        "• `priority CR-1042 high` — low, normal, high or urgent",
        "• `resolve CR-1042`, `close CR-1042`, `reopen CR-1042`",
        "• `note CR-1042 text` — an internal note, never shown to the customer",
        "In a ticket thread, a reply goes to the customer; start it with `note:` to keep it "
        "internal.",
    ]
)


def parse_command(text: str) -> Command:
    words = text.strip().split(maxsplit=2)
    if not words or words[0].lower() == "help":
        return Command("help")
    verb = words[0].lower()
    if verb not in VERBS:
        return Command("help", problem=f"I don't know `{escape(words[0])}`.")
    if len(words) < 2 or not REFERENCE.match(words[1]):
        return Command(verb, problem=f"`{verb}` needs a ticket reference, e.g. `{verb} CR-1042`.")
    reference, rest = words[1].upper(), (words[2].strip() if len(words) > 2 else "")
    if verb == "assign":
        mention = USER_MENTION.search(rest)
        if mention is None:
            return Command(
                verb, reference, rest, problem="Mention the agent: `assign CR-1042 @ana`."
            )
        return Command(verb, reference, rest, user_id=mention.group(1))
    if verb == "note" and not rest:
        return Command(verb, reference, problem="A note needs some text.")
    if verb == "priority" and rest.lower() not in {p.value for p in Priority}:
        return Command(verb, reference, rest, problem="Priority is low, normal, high or urgent.")
    return Command(verb, reference, rest)


def status_text(card: TicketCard) -> str:
    return "\n".join(
        [
            f"*{card.reference}* · {escape(card.subject)}",
            f"Status: {card.status.value} · Priority: {card.priority.value} · "
            f"Category: {escape(card.category)}",
            f"Customer: {escape(card.customer)} ({language_name(card.language)}) · "
            f"Assignee: {who(card)}",
            f"SLA: {sla_due(card)}",
        ]
    )
