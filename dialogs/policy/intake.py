"""Complaint intake: description, category, priority, email with its code, where to answer,
confirmation; and the choice between a new ticket and reopening a recent one."""

from __future__ import annotations

from typing import Any

from core.contact import CodeCheck, check_code, normalise_email
from core.model import Notify, Priority
from dialogs.decisions import (
    AddToTicket,
    ConfirmEmailCode,
    Context,
    Decision,
    DialogState,
    OpenTicket,
    Option,
    Phrase,
    RequestEmailCode,
    Say,
    SetNotify,
    TicketView,
)
from dialogs.policy.common import (
    DESCRIPTION_WORDS,
    REQUEST_WORDS,
    YES_WORDS,
    Turn,
    external_id,
    reset,
    shorten,
    to_idle,
    with_slots,
)


def start_complaint(state: DialogState, turn: Turn, ctx: Context, *, with_text: bool) -> Decision:
    resolved = ctx.recently_resolved()
    if resolved is not None and not state.slot("reopen_asked"):
        pending = turn.text if with_text and _is_description(turn.text) else None
        return ask_new_or_reopen(state, resolved, pending=pending)
    if with_text and _is_description(turn.text):
        intake = {"description": turn.text, "external_id": external_id(turn)}
        return _ask_category(reset(state, "intake_category", intake=intake), ctx)
    return Decision(reset(state, "intake_description", intake={}), (Say("intake.ask_description"),))


def _is_description(text: str) -> bool:
    """Does the text say what is wrong, beyond "I want to make a complaint"?"""
    if text.startswith("/"):
        return False
    words = [w.strip(".,!?;:'\"").lower() for w in text.split()]
    return sum(1 for w in words if w and w not in REQUEST_WORDS) >= DESCRIPTION_WORDS


def _intake(state: DialogState, **changes: Any) -> dict[str, Any]:
    return {**(state.slot("intake") or {}), **changes}


def on_description(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if not turn.text and not turn.said.attachments:
        return Decision(state, (Say("intake.ask_description"),))
    intake = _intake(
        state,
        description=turn.text or "(attachment)",
        attachments=[dict(a) for a in turn.attachments],
        external_id=external_id(turn),
    )
    return _ask_category(with_slots(state, "intake_category", intake=intake), ctx)


def _category_label(category: str) -> Phrase:
    return Phrase(f"category.{category}", fallback=category.replace("_", " ").title())


def _ask_category(state: DialogState, ctx: Context) -> Decision:
    options = tuple(
        Option(f"cat:{c}", f"category.{c}", label=_category_label(c).fallback)
        for c in ctx.config.categories
    )
    return Decision(
        with_slots(state, "intake_category"), (Say("intake.ask_category", {}, options),)
    )


def on_category(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    category = (turn.choice or "").removeprefix("cat:") if turn.choice else turn.word
    if category not in ctx.config.categories:
        return _ask_category(state, ctx)
    state = with_slots(state, "intake_priority", intake=_intake(state, category=category))
    return _ask_priority(state, ctx)


def _ask_priority(state: DialogState, ctx: Context) -> Decision:
    options = tuple(Option(f"prio:{p.value}", f"priority.{p.value}") for p in ctx.config.priorities)
    return Decision(
        with_slots(state, "intake_priority"), (Say("intake.ask_priority", {}, options),)
    )


def on_priority(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice and turn.choice.startswith("prio:"):
        value = turn.choice.removeprefix("prio:")
    else:
        value = turn.entity("priority") or turn.word
    if value not in {p.value for p in ctx.config.priorities}:
        return _ask_priority(state, ctx)
    state = with_slots(state, "intake_email", intake=_intake(state, priority=value))
    if ctx.customer.can_receive_email:
        return _ask_confirm(state, ctx)
    return Decision(state, (Say("email.ask", {}, (Option("skip", "common.skip"),)),))


def on_email(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "skip" or turn.word in {"skip", "no", "no thanks"}:
        return _ask_confirm(state, ctx)
    email = normalise_email(turn.entity("email") or turn.text)
    if email is None:
        return Decision(state, (Say("email.invalid", {}, (Option("skip", "common.skip"),)),))
    return _send_code(with_slots(state, "intake_code", intake=_intake(state, email=email)), email)


def _send_code(state: DialogState, email: str) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    return Decision(
        with_slots(state, "intake_code"),
        (Say("email.code_sent", {"email": email}, options),),
        (RequestEmailCode(email),),
    )


def on_code(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    intake = state.slot("intake") or {}
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    if turn.choice == "skip" or turn.word == "skip":
        return _ask_confirm(
            with_slots(state, "intake_confirm", intake=_intake(state, email=None)), ctx
        )
    if turn.choice == "resend" or turn.word == "resend":
        return _send_code(state, str(intake.get("email")))
    result = check_code(ctx.verification, turn.text, ctx.now)
    if result.check == CodeCheck.VERIFIED:
        notify = (
            Option("notify:chat", "notify.chat"),
            Option("notify:email", "notify.email"),
            Option("notify:both", "notify.both"),
        )
        return Decision(
            with_slots(state, "intake_notify", intake=_intake(state, verified=True)),
            (Say("email.verified", {"email": result.email}), Say("notify.ask", {}, notify)),
            (ConfirmEmailCode(turn.text),),
        )
    if result.check == CodeCheck.WRONG:
        return Decision(
            state,
            (Say("email.code_wrong", {"n": result.attempts_left}, options),),
            (ConfirmEmailCode(turn.text),),
        )
    if result.check == CodeCheck.EXPIRED:
        return Decision(state, (Say("email.code_expired", {}, options),))
    return _ask_confirm(with_slots(state, "intake_confirm", intake=_intake(state, email=None)), ctx)


def on_notify(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    value = (turn.choice or "").removeprefix("notify:") or turn.word
    if value not in {n.value for n in Notify}:
        return _ask_notify(state)
    decision = _ask_confirm(with_slots(state, state.name, intake=_intake(state, notify=value)), ctx)
    return Decision(decision.state, decision.says, (SetNotify(Notify(value)),))


def _ask_notify(state: DialogState) -> Decision:
    notify = (
        Option("notify:chat", "notify.chat"),
        Option("notify:email", "notify.email"),
        Option("notify:both", "notify.both"),
    )
    return Decision(state, (Say("notify.ask", {}, notify),))


def _ask_confirm(state: DialogState, ctx: Context) -> Decision:
    intake = state.slot("intake") or {}
    email = intake.get("email") if intake.get("verified") else None
    email = email or (ctx.customer.email if ctx.customer.can_receive_email else None)
    params = {
        "description": shorten(str(intake.get("description", "")), 300),
        "category": _category_label(str(intake.get("category", ""))),
        "priority": Phrase(f"priority.{intake.get('priority')}", fallback=""),
    }
    says = [Say("intake.summary", params)]
    if email:
        notify = Notify(intake.get("notify") or ctx.customer.notify)
        says.append(Say(f"intake.updates_{notify.value}", {"email": email}))
    options = (Option("confirm", "intake.confirm"), Option("/cancel", "common.cancel"))
    says.append(Say("intake.ask_confirm", {}, options))
    return Decision(with_slots(state, "intake_confirm"), tuple(says))


def on_confirm(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice != "confirm" and turn.word not in YES_WORDS and turn.intent(ctx) != "affirm":
        return _ask_confirm(state, ctx)
    intake = state.slot("intake") or {}
    action = OpenTicket(
        description=str(intake.get("description", "")),
        category=str(intake.get("category") or ctx.config.human_category),
        priority=Priority(intake.get("priority") or Priority.NORMAL),
        attachments=tuple(intake.get("attachments") or ()),
        external_id=intake.get("external_id"),
    )
    return Decision(reset(state, reopen_asked=None), (), (action,))


def ask_new_or_reopen(state: DialogState, ticket: TicketView, *, pending: str | None) -> Decision:
    options = (
        Option("reopen", "reopen.about_it", params={"reference": ticket.reference}),
        Option("new", "reopen.something_new"),
    )
    params = {"reference": ticket.reference, "subject": shorten(ticket.subject, 60)}
    state = reset(state, "new_or_reopen", reopen_ticket=ticket.id, pending=pending)
    return Decision(state, (Say("reopen.ask", params, options),))


def on_new_or_reopen(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("reopen_ticket"))
    pending = state.slot("pending")
    if turn.choice == "reopen" and ticket is not None:
        if pending:
            return Decision(
                reset(state),
                (Say("reopen.done", {"reference": ticket.reference}),),
                (AddToTicket(ticket.id, pending),),
            )
        return Decision(
            with_slots(state, "reopen_text"),
            (Say("reopen.ask_text", {"reference": ticket.reference}),),
        )
    if turn.choice == "new" or ticket is None:
        state = reset(state, reopen_asked=True)
        if pending:
            intake = {"description": pending}
            return _ask_category(with_slots(state, "intake_category", intake=intake), ctx)
        return Decision(
            with_slots(state, "intake_description", intake={}), (Say("intake.ask_description"),)
        )
    return to_idle(reset(state), turn, ctx)


def on_reopen_text(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("reopen_ticket"))
    if ticket is None or not (turn.text or turn.said.attachments):
        return to_idle(reset(state), turn, ctx)
    add = AddToTicket(ticket.id, turn.text, turn.attachments, external_id(turn))
    return Decision(reset(state), (Say("reopen.done", {"reference": ticket.reference}),), (add,))
