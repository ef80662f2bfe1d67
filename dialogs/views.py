"""Texts the engine builds from loaded data: a ticket's status and timeline, a data export."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from core.model import Agent, Author, Message, Ticket, TicketActivity
from dialogs.catalogue import Catalogue
from dialogs.decisions import Option, Phrase, Say
from dialogs.turn import Choice, Reply


class Renderer:
    """Catalogue texts in one language."""

    def __init__(self, catalogue: Catalogue, language: str, channel: str | None = None) -> None:
        self.catalogue = catalogue
        self.language = catalogue.language_for(language)
        self.channel = channel  # a text may have a variant for a channel: `<key>_<channel>`

    def text(self, key: str, params: Mapping[str, Any] | None = None) -> str:
        values = {name: self._value(value) for name, value in (params or {}).items()}
        variant = f"{key}_{self.channel}" if self.channel else None
        if variant is not None and self.catalogue.has(variant):
            key = variant
        return self.catalogue.text(key, self.language, **values)

    def _value(self, value: Any) -> Any:
        if isinstance(value, Phrase):
            if value.fallback is not None and not self.catalogue.has(value.key):
                return value.fallback
            return self.text(value.key, value.params)
        if isinstance(value, tuple) and value and isinstance(value[0], Phrase):
            return "\n".join(self._value(item) for item in value)
        return value

    def label(self, option: Option) -> str:
        if option.key is not None and (self.catalogue.has(option.key) or option.label is None):
            return self.text(option.key, option.params)
        return option.label or option.value

    def reply(self, says: Sequence[Say]) -> Reply:
        """Consecutive texts go out as one message; the last choices offered win."""
        text = "\n\n".join(self.text(say.key, say.params) for say in says)
        options = next((say.options for say in reversed(says) if say.options), ())
        return Reply(text, tuple(Choice(self.label(o), o.value) for o in options))

    def duration(self, span: timedelta) -> str:
        minutes = max(1, round(span.total_seconds() / 60))
        if minutes < 60:
            return self.text("duration.minutes", {"n": minutes})
        hours = round(minutes / 60)
        if hours < 48:
            return self.text("duration.hours", {"n": hours})
        return self.text("duration.days", {"n": round(hours / 24)})

    def moment(self, at: datetime) -> str:
        return at.strftime("%d %b %H:%M")


def ticket_details(
    r: Renderer,
    ticket: Ticket,
    timeline: Sequence[Message | TicketActivity],
    agents: Mapping[int, Agent],
    size: int,
) -> str:
    """Status, assignee and what happened, for the customer: internal notes never show."""
    assignee = agents.get(ticket.assignee_id) if ticket.assignee_id is not None else None
    lines = [
        r.text(
            "ticket.header",
            {
                "reference": ticket.reference,
                "subject": ticket.subject,
                "status": r.text(f"status.{ticket.status.value}"),
                "assignee": assignee.name if assignee else r.text("ticket.nobody_yet"),
            },
        )
    ]
    entries = [line for e in timeline if (line := _timeline_line(r, e, agents))]
    if entries:
        lines.append(r.text("ticket.timeline"))
        lines.extend(entries[-size:])
    return "\n".join(lines)


def _timeline_line(
    r: Renderer, entry: Message | TicketActivity, agents: Mapping[int, Agent]
) -> str | None:
    when = r.moment(entry.created_at)
    if isinstance(entry, Message):
        if entry.author == Author.NOTE:
            return None
        if entry.author == Author.AGENT:
            agent = agents.get(entry.agent_id or 0)
            who = agent.name if agent else r.text("ticket.agent")
        elif entry.author == Author.CUSTOMER:
            who = r.text("ticket.you")
        else:
            who = r.text("ticket.bot")
        return f"• {when} {who}: {_shorten(entry.body, 200)}"
    detail = entry.detail
    key = f"activity.{entry.kind}"
    if not r.catalogue.has(key):
        return None
    params = dict(detail)
    if "new" in params and entry.kind == "status_changed":
        params["new"] = r.text(f"status.{params['new']}")
    if entry.kind == "priority_changed":
        params["new"] = r.text(f"priority.{params.get('new')}")
    return f"• {when} {r.text(key, params)}"


def export_summary(r: Renderer, data: Mapping[str, Any]) -> str:
    customer = data.get("customer", {})
    lines = [
        r.text(
            "data.export_header",
            {
                "name": customer.get("display_name") or "-",
                "email": customer.get("email") or "-",
                "notify": customer.get("notify") or "-",
                "since": str(customer.get("created_at", ""))[:10],
            },
        )
    ]
    for identity in data.get("identities", []):
        lines.append(
            f"• {identity.get('channel')}: {identity.get('name') or identity.get('user_id')}"
        )
    tickets = data.get("tickets", [])
    lines.append(r.text("data.export_tickets", {"n": len(tickets)}))
    for ticket in tickets:
        lines.append(
            f"• {ticket['reference']} · {_shorten(ticket['subject'], 60)} · "
            f"{r.text('status.' + ticket['status'])} · "
            f"{r.text('data.export_messages', {'n': len(ticket['messages'])})}"
        )
    return "\n".join(lines)


def export_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False, default=str)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
