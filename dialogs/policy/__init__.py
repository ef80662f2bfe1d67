"""The pure dialog policy: `decide(state, parse, said, context) -> Decision`. No I/O.

States: idle (with or without a ticket handed over to a human), faq_feedback, faq_offer,
intake_description/category/priority/email/code/notify/confirm, new_or_reopen, reopen_text,
status_pick, rate_score, rate_comment, data_menu, erase_confirm, language_pick.

A pressed choice acts only while it is offered: a button of an earlier message (stale) or a
second click on one already acted on (doubled) is refused and never reaches a ticket. Only
`ticket:<id>` (read-only) and `rate:<id>:<score>` (sent with the relay's resolution notice,
never offered by a turn) work whenever pressed. Typed commands (`/new`) act from any state.
`assistant:<n>` picks one of the NLU assistant's own choices (Watson's options); the engine
puts the choice's text in its place before the policy sees it (`picked_assistant_text`).
"""

from __future__ import annotations

from dialogs.decisions import (
    RATE_CHOICE,
    TICKET_CHOICE,
    Action,
    Context,
    Decision,
    DialogState,
    Say,
)
from dialogs.nlu.base import Parse
from dialogs.policy.commands import command, edited
from dialogs.policy.common import (
    ALWAYS_OPEN,
    COMMANDS,
    FAQ,
    Handler,
    cancel,
    chosen_value,
    is_cancel,
    picked_assistant_text,
    read_turn,
    reads_contact,
    stale_choice,
    still_open,
)
from dialogs.policy.faq import on_faq_feedback, on_faq_offer
from dialogs.policy.idle import INTENT_HANDLERS, idle
from dialogs.policy.intake import (
    on_category,
    on_code,
    on_confirm,
    on_description,
    on_email,
    on_new_or_reopen,
    on_notify,
    on_priority,
    on_reopen_text,
)
from dialogs.policy.mydata import (
    e164,
    on_calls_pick,
    on_data_menu,
    on_erase_confirm,
    on_language_pick,
    on_phone_code,
    on_phone_menu,
    on_phone_number,
)
from dialogs.policy.rating import on_comment, on_rate_button, on_score
from dialogs.policy.status import on_status_pick, show_ticket
from dialogs.turn import UserSaid


def decide(state: DialogState, parse: Parse, said: UserSaid, ctx: Context) -> Decision:
    """What to say and do for one customer input, and the state after it."""
    turn = read_turn(state, parse, said)
    if len(said.text) > ctx.config.max_text_chars:
        return Decision(
            state, (Say("input.too_long", {"limit": ctx.config.max_text_chars}),), keep_options=True
        )
    if any((a.size or 0) > ctx.config.max_upload_bytes for a in said.attachments):
        limit = ctx.config.max_upload_bytes // (1024 * 1024)
        return Decision(state, (Say("input.file_too_big", {"limit": limit}),), keep_options=True)
    if said.choice is not None and not still_open(state, said.choice):
        return stale_choice(state)
    if said.edited:
        return edited(state, turn, ctx)
    if turn.command is not None:
        return command(state, turn, ctx)
    if turn.choice and turn.choice.startswith(TICKET_CHOICE):
        return show_ticket(state, ctx, turn.choice.removeprefix(TICKET_CHOICE))
    if turn.choice and turn.choice.startswith(RATE_CHOICE):
        return on_rate_button(state, turn, ctx)
    if state.name != "idle" and is_cancel(state, turn, ctx):
        return cancel(state)
    handler = HANDLERS.get(state.name, idle)
    return handler(state, turn, ctx)


HANDLERS: dict[str, Handler] = {
    "idle": idle,
    "faq_feedback": on_faq_feedback,
    "faq_offer": on_faq_offer,
    "intake_description": on_description,
    "intake_category": on_category,
    "intake_priority": on_priority,
    "intake_email": on_email,
    "intake_code": on_code,
    "intake_notify": on_notify,
    "intake_confirm": on_confirm,
    "new_or_reopen": on_new_or_reopen,
    "reopen_text": on_reopen_text,
    "status_pick": on_status_pick,
    "rate_score": on_score,
    "rate_comment": on_comment,
    "data_menu": on_data_menu,
    "language_pick": on_language_pick,
    "calls_pick": on_calls_pick,
    "phone_menu": on_phone_menu,
    "phone_number": on_phone_number,
    "phone_code": on_phone_code,
    "erase_confirm": on_erase_confirm,
}

__all__ = [
    "ALWAYS_OPEN",
    "COMMANDS",
    "FAQ",
    "HANDLERS",
    "INTENT_HANDLERS",
    "Action",
    "chosen_value",
    "decide",
    "e164",
    "picked_assistant_text",
    "reads_contact",
]
