"""Ticket status: the list of the customer's tickets and one ticket's details."""

from __future__ import annotations

from core.model import ticket_id_from_reference
from dialogs.decisions import (
    TICKET_CHOICE,
    Context,
    Decision,
    DialogState,
    Option,
    Phrase,
    Say,
    ShowTicket,
)
from dialogs.policy.common import Turn, reset, shorten, to_idle


def ticket_list(state: DialogState, ctx: Context) -> Decision:
    tickets = ctx.tickets[: ctx.config.status_list_size]
    if not tickets:
        return Decision(reset(state), (Say("status.none", {}, (Option("/new", "menu.complain"),)),))
    lines = tuple(
        Phrase(
            "status.line",
            {
                "reference": t.reference,
                "subject": shorten(t.subject, 60),
                "status": Phrase(f"status.{t.status.value}"),
            },
        )
        for t in tickets
    )
    options = tuple(Option(f"{TICKET_CHOICE}{t.id}", label=t.reference) for t in tickets)
    return Decision(reset(state, "status_pick"), (Say("status.list", {"tickets": lines}, options),))


def show_ticket(state: DialogState, ctx: Context, raw_id: str) -> Decision:
    ticket = ctx.ticket(int(raw_id)) if raw_id.isdigit() else None
    if ticket is None:
        return Decision(reset(state), (Say("status.unknown_ticket"),))
    return Decision(reset(state), (), (ShowTicket(ticket.id),))


def on_status_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    reference = turn.entity("ticket_ref") or turn.text
    ticket_id = ticket_id_from_reference(reference)
    if ticket_id is not None:
        return show_ticket(state, ctx, str(ticket_id))
    return to_idle(reset(state), turn, ctx)
