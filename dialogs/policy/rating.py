"""Rating a resolved ticket: a score, then an optional comment."""

from __future__ import annotations

from core.model import ticket_id_from_reference
from dialogs.decisions import (
    SCORES,
    CommentOnRating,
    Context,
    Decision,
    DialogState,
    Option,
    RateTicket,
    Say,
    TicketView,
    read_rate_choice,
)
from dialogs.policy.common import Turn, reset, to_idle

SCORE_OPTIONS = tuple(Option(str(n), f"rate.score_{n}") for n in SCORES)


def rate_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.unrated()
    if ticket is None:
        return Decision(state, (Say("rate.nothing"),))
    return _ask_score(state, ticket)


def _ask_score(state: DialogState, ticket: TicketView) -> Decision:
    state = reset(state, "rate_score", rate_ticket=ticket.id)
    return Decision(state, (Say("rate.ask", {"reference": ticket.reference}, SCORE_OPTIONS),))


def on_rate_button(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    named, score = read_rate_choice(turn.choice or "")
    ticket_id = None
    if named is not None:
        ticket_id = int(named) if named.isdigit() else ticket_id_from_reference(named)
    ticket = ctx.ticket(ticket_id) if ticket_id is not None else None
    if ticket is None:
        return Decision(reset(state), (Say("status.unknown_ticket"),))
    if score is not None:
        return _ask_comment(state, ticket.id, score)
    return _ask_score(state, ticket)


def _ask_comment(state: DialogState, ticket_id: int, score: int) -> Decision:
    """The score is recorded now; the comment is optional and may never come."""
    state = reset(state, "rate_comment", rate_ticket=ticket_id)
    ask = Say("rate.ask_comment", {}, (Option("skip", "common.skip"),))
    return Decision(state, (ask,), (RateTicket(ticket_id, score),))


def on_score(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("rate_ticket"))
    if ticket is None:
        return to_idle(reset(state), turn, ctx)
    score = turn.choice or turn.word
    if score in {"1", "2", "3", "4", "5"}:
        return _ask_comment(state, ticket.id, int(score))
    return Decision(state, (Say("rate.ask", {"reference": ticket.reference}, SCORE_OPTIONS),))


def on_comment(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if state.slot("rate_ticket") is None:
        return to_idle(reset(state), turn, ctx)
    comment = None if turn.choice == "skip" or turn.word == "skip" else turn.text or None
    actions = (CommentOnRating(int(state.slot("rate_ticket")), comment),) if comment else ()
    return Decision(reset(state), (Say("rate.thanks"),), actions)
