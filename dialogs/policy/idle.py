"""Idle: free text by intent, answers from the knowledge base or the assistant, and what is
not understood."""

from __future__ import annotations

from core.knowledge import GapReason
from core.model import ticket_id_from_reference
from dialogs.decisions import (
    AddToTicket,
    Context,
    Decision,
    DialogState,
    NoteGap,
    Option,
    Passage,
    Say,
)
from dialogs.nlu.base import OUT_OF_SCOPE, AssistantAnswer
from dialogs.policy.common import (
    ASSISTANT_CHOICE,
    FAQ,
    MENU,
    Handler,
    Turn,
    external_id,
    greeting,
    handover_ticket,
    help_menu,
    reset,
    with_slots,
)
from dialogs.policy.faq import FAQ_OFFERS
from dialogs.policy.human import hand_over
from dialogs.policy.intake import ask_new_or_reopen, start_complaint
from dialogs.policy.mydata import data_menu
from dialogs.policy.rating import rate_intent
from dialogs.policy.status import show_ticket, ticket_list


def idle(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    state = reset(state, misses=state.slot("misses", 0))
    handover = handover_ticket(state, ctx)
    if handover is not None and (turn.text or turn.said.attachments):
        add = AddToTicket(handover.id, turn.text, turn.attachments, external_id(turn))
        return Decision(
            state, (Say("handover.receipt", {"reference": handover.reference}),), (add,)
        )
    if not turn.text:
        key = "input.unsupported" if turn.said.attachments else "input.empty"
        return Decision(state, (Say(key, {}, MENU),))
    intent = asked = turn.intent(ctx)
    state = with_slots(state, "idle", misses=0) if intent != OUT_OF_SCOPE else state
    if intent == FAQ or intent.startswith("faq_"):
        answer = turn.parse.answer or (ctx.faq.answer(intent) if ctx.faq else None)
        if answer:
            return _faq(state, answer)
        intent = OUT_OF_SCOPE
    simple = INTENT_HANDLERS.get(intent)
    if simple is not None:
        return simple(state, turn, ctx)
    assistant = turn.parse.assistant
    if assistant and assistant.to_agent:
        return hand_over(state, turn, ctx)
    if assistant and intent != OUT_OF_SCOPE:
        return _assistant_answers(state, assistant)
    found = ctx.knowledge.find(turn.text, asked) if ctx.knowledge else None
    # A weak match must not keep a recently resolved ticket from being offered again.
    if found is not None and (found.confident or ctx.recently_resolved() is None):
        return _grounded(state, found, turn.text)
    return _not_understood(state, turn, ctx)


def _assistant_answers(state: DialogState, assistant: AssistantAnswer) -> Decision:
    """The assistant's own answer as it gave it: its texts, its choices as buttons."""
    options = tuple(
        Option(f"{ASSISTANT_CHOICE}{number}", label=choice.label)
        for number, choice in enumerate(assistant.choices)
    )
    # What each choice sends back, for picked_assistant_text on the next message.
    state = with_slots(state, "idle", assistant_choices=[c.text for c in assistant.choices])
    # faq.answer is the catalogue's verbatim text ("{answer}").
    return Decision(state, (Say("faq.answer", {"answer": "\n\n".join(assistant.texts)}, options),))


def _not_understood(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    resolved = ctx.recently_resolved()
    if resolved is not None:
        return ask_new_or_reopen(state, resolved, pending=turn.text)
    misses = int(state.slot("misses", 0)) + 1
    state = with_slots(state, "idle", misses=misses)
    gap = (NoteGap(turn.text, GapReason.NOT_UNDERSTOOD),)
    if misses >= ctx.config.misses_before_human:
        return Decision(state, (Say("input.not_understood_again", {}, MENU),), gap)
    return Decision(state, (Say("input.not_understood", {}, MENU),), gap)


def _faq(state: DialogState, answer: str) -> Decision:
    helped = (Option("yes", "common.yes"), Option("no", "common.no"))
    return Decision(
        with_slots(state, "faq_feedback"),
        (Say("faq.answer", {"answer": answer}), Say("faq.did_it_help", {}, helped)),
    )


def _grounded(state: DialogState, found: Passage, question: str) -> Decision:
    """A paragraph of a published article as written, and its title; when the best match
    is weak, no quote at all: the bot says it is not sure and offers a ticket or a person."""
    if not found.confident:
        unsure = NoteGap(question, GapReason.UNSURE, found.article_id)
        said = (Say("knowledge.unsure", {}, FAQ_OFFERS),)
        return Decision(with_slots(state, "faq_offer"), said, (unsure,))
    helped = (Option("yes", "common.yes"), Option("no", "common.no"))
    answered = [found.article_id, found.version]
    state = with_slots(state, "faq_feedback", answered=answered, asked=question)
    source = {"passage": found.text, "title": found.title}
    return Decision(state, (Say("knowledge.answer", source), Say("faq.did_it_help", {}, helped)))


def _greet(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (greeting(ctx),))


def _goodbye(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("goodbye"),))


def _thanks(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("thanks"),))


def _nothing_to_cancel(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("cancel.nothing", {}, MENU),))


def _complain(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return start_complaint(state, turn, ctx, with_text=True)


def _status_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    reference = turn.entity("ticket_ref")
    if reference is not None:
        return show_ticket(state, ctx, str(ticket_id_from_reference(reference)))
    return ticket_list(state, ctx)


def _data_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return data_menu(state)


def _help_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return help_menu(state)


INTENT_HANDLERS: dict[str, Handler] = {
    "greet": _greet,
    "help": _help_intent,
    "goodbye": _goodbye,
    "thanks": _thanks,
    "cancel": _nothing_to_cancel,
    "complain": _complain,
    "ticket_status": _status_intent,
    "human": hand_over,
    "my_data": _data_intent,
    "rate": rate_intent,
}
