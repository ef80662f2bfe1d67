"""The pure policy on plain values: no database, no NLU."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from core.lifecycle import Status
from core.model import Channel, Priority, utcnow
from core.ports import EmailVerification
from dialogs.config import DialogConfig
from dialogs.decisions import (
    AddToTicket,
    ConfirmEmailCode,
    Context,
    CustomerView,
    DialogState,
    OpenTicket,
    RequestEmailCode,
    RequestHuman,
    TicketView,
)
from dialogs.nlu import OUT_OF_SCOPE, Parse
from dialogs.policy import decide
from dialogs.turn import UserSaid

NOW = utcnow()
CONFIG = DialogConfig(categories=("billing", "other"))
NOTHING = Parse(OUT_OF_SCOPE, 0.0)


def said(text: str = "", choice: str | None = None, **kw: object) -> UserSaid:
    return UserSaid(Channel.WEBCHAT, "v1", "v1", text=text, choice=choice, message_id="7", **kw)  # type: ignore[arg-type]


def ctx(*tickets: TicketView, **kw: object) -> Context:
    return Context(now=NOW, config=CONFIG, tickets=tickets, **kw)  # type: ignore[arg-type]


def ticket(status: Status = Status.OPEN, **kw: object) -> TicketView:
    base = TicketView(1, "CR-1001", "Broken", status, NOW - timedelta(days=1))
    return replace(base, **kw)  # type: ignore[arg-type]


def test_confirmation_opens_the_ticket_from_the_collected_slots() -> None:
    intake = {
        "description": "It broke",
        "category": "billing",
        "priority": "high",
        "external_id": "c:5",
    }
    offered = [["Yes, open it", "confirm"], ["Cancel", "/cancel"]]
    state = DialogState("intake_confirm", {"intake": intake, "offered": offered})
    decision = decide(state, NOTHING, said(choice="confirm"), ctx())
    assert decision.actions == (OpenTicket("It broke", "billing", Priority.HIGH, (), "c:5"),)
    assert decision.state.name == "idle"
    assert "intake" not in decision.state.slots


def test_typed_number_picks_from_the_offered_choices() -> None:
    state = DialogState(
        "intake_category",
        {"intake": {}, "offered": [["Billing", "cat:billing"], ["Other", "cat:other"]]},
    )
    decision = decide(state, NOTHING, said("2"), ctx())
    assert decision.state.slots["intake"]["category"] == "other"
    assert decision.state.name == "intake_priority"


def test_handover_sends_free_text_to_the_active_ticket_with_a_chat_scoped_id() -> None:
    decision = decide(
        DialogState("idle", {"ticket_id": 1}), Parse("greet", 0.99), said("hi"), ctx(ticket())
    )
    assert decision.actions == (AddToTicket(1, "hi", (), "v1:7"),)
    assert [s.key for s in decision.says] == ["handover.receipt"]


def test_handover_ends_when_the_ticket_is_no_longer_active() -> None:
    decision = decide(
        DialogState("idle", {"ticket_id": 1}),
        Parse("greet", 0.99),
        said("hi"),
        ctx(ticket(Status.CLOSED)),
    )
    assert decision.actions == ()
    assert decision.says[0].key == "greet_anonymous"  # the context knows no name


def test_greeting_without_a_name_reads_naturally() -> None:
    nameless = decide(DialogState(), Parse("greet", 0.99), said("hi"), ctx())
    named = decide(
        DialogState(), Parse("greet", 0.99), said("hi"), ctx(customer=CustomerView("Ada Lovelace"))
    )
    assert [s.key for s in nameless.says] == ["greet_anonymous"]
    assert named.says[0].key == "greet" and named.says[0].params == {"name": "Ada"}


def test_low_confidence_counts_as_not_understood() -> None:
    decision = decide(DialogState(), Parse("greet", 0.2), said("hmm"), ctx())
    assert decision.says[0].key == "input.not_understood"
    assert decision.state.slots["misses"] == 1


def test_recently_resolved_ticket_turns_free_text_into_a_reopen_question() -> None:
    resolved = ticket(Status.RESOLVED, resolved_at=NOW - timedelta(days=2))
    decision = decide(DialogState(), NOTHING, said("again broken"), ctx(resolved))
    assert decision.state.name == "new_or_reopen"
    assert decision.state.slots["pending"] == "again broken"
    offered = {**decision.state.slots, "offered": [["About CR-1001", "reopen"]]}
    follow = decide(
        replace(decision.state, slots=offered), NOTHING, said(choice="reopen"), ctx(resolved)
    )
    assert follow.actions == (AddToTicket(1, "again broken"),)


def test_human_request_carries_the_conversation_summary() -> None:
    history = ({"who": "customer", "text": "my bill"}, {"who": "bot", "text": "sorry"})
    decision = decide(DialogState("idle", {}, history), NOTHING, said("/human"), ctx())
    (action,) = decision.actions
    assert isinstance(action, RequestHuman)
    assert action.ticket_id is None
    assert action.summary == "customer: my bill\nbot: sorry"


def test_email_code_is_checked_against_the_pending_verification() -> None:
    pending = EmailVerification(3, 1, "a@b.co", "123456", 0, NOW, NOW + timedelta(minutes=5))
    state = DialogState("intake_code", {"intake": {"email": "a@b.co"}})
    right = decide(state, NOTHING, said("123 456"), ctx(verification=pending))
    assert right.actions == (ConfirmEmailCode("123 456"),)
    assert right.state.name == "intake_notify"
    wrong = decide(state, NOTHING, said("654321"), ctx(verification=pending))
    assert wrong.state.name == "intake_code"
    assert wrong.says[0].key == "email.code_wrong"
    expired = replace(pending, expires_at=NOW - timedelta(seconds=1))
    assert (
        decide(state, NOTHING, said("123456"), ctx(verification=expired)).says[0].key
        == "email.code_expired"
    )


def test_resend_requests_a_new_code() -> None:
    offered = [["Resend the code", "resend"], ["Skip", "skip"]]
    state = DialogState("intake_code", {"intake": {"email": "a@b.co"}, "offered": offered})
    assert decide(state, NOTHING, said(choice="resend"), ctx()).actions == (
        RequestEmailCode("a@b.co"),
    )


def test_oversize_text_is_refused_and_keeps_the_state() -> None:
    state = DialogState("intake_category", {"intake": {}})
    decision = decide(state, NOTHING, said("x" * 5000), ctx())
    assert decision.state == state and decision.keep_options
    assert decision.says[0].params["limit"] == 4000


def test_rating_choice_for_a_ticket_of_someone_else_is_refused() -> None:
    decision = decide(
        DialogState(), NOTHING, said(choice="rate:99:5"), ctx(ticket(Status.RESOLVED))
    )
    assert decision.says[0].key == "status.unknown_ticket"
    assert decision.actions == ()


def test_every_state_answers_every_kind_of_input() -> None:
    from dialogs.policy import HANDLERS

    inputs = [
        said(""),
        said("blah"),
        said("/cancel"),
        said("cancel"),
        said(choice="zzz"),
        said("1"),
    ]
    for name in HANDLERS:
        for one in inputs:
            decision = decide(DialogState(name, {"intake": {}}), NOTHING, one, ctx())
            assert decision.says or decision.actions, (name, one)
