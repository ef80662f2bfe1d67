"""A person asked for: the ticket handed over with the customer's own words."""

from __future__ import annotations

from dialogs.decisions import (
    Context,
    Decision,
    DialogState,
    RequestHuman,
)
from dialogs.policy.common import OWN_WORDS, Turn, handover_ticket, reset


def hand_over(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    handover = handover_ticket(state, ctx) or next((t for t in ctx.tickets if t.is_active), None)
    intake = state.slot("intake") or {}
    action = RequestHuman(
        ticket_id=handover.id if handover is not None else None,
        summary=_summary(state, turn),
        description=str(intake.get("description") or "") or _own_words(state, turn),
    )
    return Decision(reset(state), (), (action,))


def _own_words(state: DialogState, turn: Turn) -> str:
    """What the customer wrote themselves lately: never a button, a command or a picked number."""
    words = [
        str(entry.get("text", ""))
        for entry in state.history
        if entry.get("who") == "customer"
        and not entry.get("choice")
        and not str(entry.get("text", "")).startswith("/")
    ]
    if turn.text and turn.command is None and turn.choice is None:
        words.append(turn.text)
    return "\n".join(w for w in words[-OWN_WORDS:] if w.strip())


def _summary(state: DialogState, turn: Turn) -> str:
    lines = [f"{entry.get('who', '?')}: {entry.get('text', '')}" for entry in state.history]
    if turn.text and turn.command is None:
        lines.append(f"customer: {turn.text}")
    return "\n".join(lines[-30:])
