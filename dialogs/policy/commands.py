"""Typed commands (`/new`, `/status`, ...), which act from any state, and edited messages."""

from __future__ import annotations

from dialogs.decisions import (
    AddToTicket,
    Context,
    Decision,
    DialogState,
    Say,
)
from dialogs.policy.common import (
    COMMANDS,
    Turn,
    cancel,
    greeting,
    handover_ticket,
    help_menu,
    reset,
)
from dialogs.policy.human import hand_over
from dialogs.policy.intake import start_complaint
from dialogs.policy.mydata import calls_menu, data_menu, language_menu, phone_menu
from dialogs.policy.status import ticket_list


def command(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    command = turn.command
    if command == "/start":
        return Decision(reset(state), (greeting(ctx),))
    if command == "/help":
        return help_menu(state)
    if command == "/new":
        return start_complaint(reset(state), turn, ctx, with_text=False)
    if command == "/status":
        return ticket_list(reset(state), ctx)
    if command == "/human":
        return hand_over(state, turn, ctx)
    if command == "/cancel":
        return cancel(state)
    if command == "/mydata":
        return data_menu(reset(state))
    if command == "/language":
        return language_menu(reset(state), ctx)
    if command == "/calls":
        return calls_menu(reset(state), turn)
    if command == "/phone":
        return phone_menu(reset(state), turn, ctx)
    return Decision(state, (Say("input.unknown_command", {"commands": " ".join(COMMANDS)}),))


def edited(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    handover = handover_ticket(state, ctx)
    if handover is not None and turn.text:
        edited = AddToTicket(handover.id, f"(edited) {turn.text}")
        return Decision(
            state, (Say("handover.receipt", {"reference": handover.reference}),), (edited,)
        )
    return Decision(state, (Say("input.edited"),), keep_options=True)
