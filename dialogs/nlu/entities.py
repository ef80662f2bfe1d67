"""Entities every backend can find locally with regular expressions."""

from __future__ import annotations

import re

from dialogs.nlu.base import Entity

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Ticket references look like CR-1042; customers often type them lower-case or with a space.
_TICKET = re.compile(r"\b[Cc][Rr][- ]?(\d{1,9})\b")
_PRIORITY_WORDS: dict[str, str] = {
    "urgent": "urgent",
    "asap": "urgent",
    "emergency": "urgent",
    "critical": "urgent",
    "immediately": "urgent",
    "high": "high",
    "important": "high",
    "normal": "normal",
    "medium": "normal",
    "low": "low",
    "minor": "low",
    "whenever": "low",
}
_PRIORITY = re.compile(r"\b(" + "|".join(_PRIORITY_WORDS) + r")\b", re.IGNORECASE)


def extract_entities(text: str) -> tuple[Entity, ...]:
    """Email addresses, ticket references (normalised to ``CR-<n>``) and priority words."""
    found: list[Entity] = []
    for match in _EMAIL.finditer(text):
        found.append(Entity("email", match.group(0), match.start(), match.end()))
    for match in _TICKET.finditer(text):
        found.append(Entity("ticket_ref", f"CR-{match.group(1)}", match.start(), match.end()))
    for match in _PRIORITY.finditer(text):
        level = _PRIORITY_WORDS[match.group(1).lower()]
        found.append(Entity("priority", level, match.start(), match.end()))
    found.sort(key=lambda entity: entity.start or 0)
    return tuple(found)
