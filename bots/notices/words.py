"""The pieces of a notice's words: which notice an event causes, the rating buttons, the
expected wait, where to write, and the customer's timeline as an email shows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import events as ev
from core.model import Author, Channel, ChannelIdentity, Message, TicketActivity
from dialogs.catalogue import Catalogue, shipped_catalogue
from dialogs.decisions import SCORES, rate_choice
from dialogs.turn import Choice, Reply

#: The notices' texts are the catalogue's `notice.*` (dialogs/messages/<language>.yaml), in the
#: customer's language; an assignee's email is in the default language. Fields: reference,
#: subject, agent, body, position, wait, reopen_days, where, kind, due, priority.
#: Where a customer writes to us, by the channel their ticket came from (`{where}` in email).
WHERE = {
    Channel.WEBCHAT: "webchat",
    Channel.TELEGRAM: "telegram",
    Channel.SLACK: "slack",
    Channel.SMS: "sms",
}


@dataclass(frozen=True, slots=True)
class AgentReply(Reply):
    """An agent's answer: reads as "Name: text" anywhere; a channel that can show who wrote
    (the web chat: name, initial, a person's bubble) uses `agent` and `body`."""

    agent: str = ""
    body: str = ""


def rating_choices(
    reference: str, catalogue: Catalogue | None = None, language: str | None = None
) -> tuple[Choice, ...]:
    """The buttons the dialog engine reads back (dialogs.decisions.rate_choice); the labels
    carry their number ("4 - Very good") in the customer's language."""
    words = catalogue or shipped_catalogue()
    return tuple(
        Choice(f"{n} - {words.text(f'notice.rating.{n}', language)}", rate_choice(reference, n))
        for n in SCORES
    )


def notice_kind(event: ev.Event) -> str | None:
    """Which customer notice an event causes, if any."""
    if isinstance(event, ev.TicketOpened):
        return "ticket_opened"
    if isinstance(event, ev.TicketAssigned):
        return "agent_assigned"
    if isinstance(event, ev.AgentReplied):
        return "agent_replied"
    if isinstance(event, ev.HumanRequested):
        return "queued"
    if isinstance(event, ev.TicketStatusChanged):
        if event.new_status == "waiting":
            return "waiting"
        if event.new_status == "resolved":
            return "resolved"
        if event.new_status == "closed":
            return "auto_closed" if event.reason == "auto-closed" else "closed"
    return None


def where_to_write(
    identity: ChannelIdentity | None, catalogue: Catalogue, language: str | None
) -> str:
    """For an email: the chat the customer uses, by name."""
    place = WHERE.get(identity.channel, "chat") if identity else "chat"
    return catalogue.text(f"notice.where.{place}", language)


def human_wait(minutes: float, catalogue: Catalogue, language: str | None) -> str:
    if minutes < 1.5:
        return catalogue.text("notice.wait.minute", language)
    if minutes < 90:
        return catalogue.text("notice.wait.minutes", language, n=round(minutes))
    return catalogue.text("notice.wait.hours", language, n=round(minutes / 60))


def say_in(catalogue: Catalogue, language: str | None) -> Callable[..., str]:
    """`say(key, **params)`: the catalogue in one language."""
    return lambda key, **params: catalogue.text(key, language, **params)


def customer_timeline(
    entries: Any, agent: str | None, say: Callable[..., str]
) -> list[dict[str, str]]:
    """Customer-visible timeline: messages (never internal notes) and status moves."""
    shown: list[dict[str, str]] = []
    for entry in entries:
        at = entry.created_at.strftime("%Y-%m-%d %H:%M UTC")
        if isinstance(entry, Message):
            if entry.author == Author.NOTE:
                continue
            who = {Author.CUSTOMER: say("notice.you"), Author.BOT: "Careline"}.get(
                entry.author, agent or say("notice.agent")
            )
            shown.append({"at": at, "who": who, "text": _short(entry.body)})
        elif isinstance(entry, TicketActivity):
            line = _activity_line(entry, say)
            if line:
                shown.append({"at": at, "who": "Careline", "text": line})
    return shown


def _activity_line(activity: TicketActivity, say: Callable[..., str]) -> str | None:
    detail = activity.detail
    if activity.kind == "status_changed" and detail.get("new"):
        return say("notice.status_changed", status=say(f"status.{detail['new']}"))
    if activity.kind == "assigned":
        if detail.get("agent"):
            return say("notice.assigned_to", agent=detail["agent"])
        return say("notice.assigned_someone")
    if activity.kind == "rated":
        return say("notice.rated", score=detail.get("score"))
    return None


def _short(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
