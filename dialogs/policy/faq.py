"""After an answer from the knowledge base: "did that help?" and what to offer when not."""

from __future__ import annotations

from core.knowledge import GapReason
from dialogs.decisions import (
    Action,
    Context,
    Decision,
    DialogState,
    NoteGap,
    Option,
    RateAnswer,
    Say,
)
from dialogs.policy.common import NO_WORDS, YES_WORDS, Turn, reset, to_idle, with_slots

FAQ_OFFERS = (
    Option("/new", "faq.offer_ticket"),
    Option("/human", "faq.offer_human"),
    Option("no_thanks", "common.no_thanks"),
)


def on_faq_feedback(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "yes" or turn.word in YES_WORDS or turn.intent(ctx) in ("affirm", "thanks"):
        return Decision(reset(state), (Say("faq.glad"),), _rated(state, helped=True))
    if turn.choice == "no" or turn.word in NO_WORDS or turn.intent(ctx) == "deny":
        said = (Say("faq.sorry", {}, FAQ_OFFERS),)
        return Decision(with_slots(state, "faq_offer"), said, _rated(state, helped=False))
    return to_idle(reset(state), turn, ctx)


def _rated(state: DialogState, *, helped: bool) -> tuple[Action, ...]:
    """Feedback on the article version answered from (none for the FAQ file's answers)."""
    answered = state.slot("answered")
    if not answered:
        return ()
    article_id, version = answered
    rated = RateAnswer(int(article_id), int(version), helped)
    if helped:
        return (rated,)
    asked = str(state.slot("asked", ""))
    return (rated, NoteGap(asked, GapReason.NOT_HELPED, int(article_id)))


def on_faq_offer(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "no_thanks" or turn.word in NO_WORDS:
        return Decision(reset(state), (Say("common.ok"),))
    return to_idle(reset(state), turn, ctx)
