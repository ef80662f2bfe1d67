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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.contact import CodeCheck, check_code, normalise_email
from core.knowledge import GapReason
from core.model import Channel, Notify, Priority, ticket_id_from_reference
from dialogs.decisions import (
    RATE_CHOICE,
    SCORES,
    TICKET_CHOICE,
    Action,
    AddToTicket,
    CommentOnRating,
    ConfirmEmailCode,
    ConfirmPhoneCode,
    Context,
    Decision,
    DialogState,
    EraseData,
    ExportData,
    NoteGap,
    OpenTicket,
    Option,
    Passage,
    Phrase,
    RateAnswer,
    RateTicket,
    RequestEmailCode,
    RequestHuman,
    RequestPhoneCode,
    Say,
    SetCalls,
    SetLanguage,
    SetNotify,
    SetTexts,
    ShowTicket,
    TicketView,
    read_rate_choice,
)
from dialogs.nlu.base import OUT_OF_SCOPE, AssistantAnswer, Parse
from dialogs.turn import Choice, Reply, UserSaid

COMMANDS = (
    "/start",
    "/help",
    "/new",
    "/status",
    "/human",
    "/cancel",
    "/mydata",
    "/language",
    "/calls",
    "/phone",
)
CANCEL_WORDS = frozenset({"cancel", "stop", "abort", "quit", "exit", "never mind", "nevermind"})
YES_WORDS = frozenset({"yes", "y", "yeah", "yep", "sure", "ok", "okay"})
NO_WORDS = frozenset({"no", "n", "nope", "nah"})
#: The target of an intent answered as an FAQ with the assistant's own text.
FAQ = "faq"
#: Value prefix of the assistant's own choices: `assistant:<number>`, short enough for
#: Telegram's 64-byte callback_data (https://core.telegram.org/bots/api#inlinekeyboardbutton).
ASSISTANT_CHOICE = "assistant:"
#: Choices that work whenever pressed: a ticket's details, and the relay's rating buttons.
ALWAYS_OPEN = (TICKET_CHOICE, RATE_CHOICE)
#: How many of the customer's recent messages describe a ticket opened for a person.
OWN_WORDS = 3
#: Slots that survive a cancel or a finished flow.
LASTING_SLOTS = ("ticket_id", "seen")
#: A complaint said with this many words besides the request itself is its description.
DESCRIPTION_WORDS = 3
REQUEST_WORDS = frozenset(
    (  # noqa: SIM905 - a word list reads best as words
        "i i'd i'm want wanna would like to make file open raise lodge submit start report a an "
        "the new complaint complain ticket problem issue please need have got my about me help "
        "with can you could do there is it this"
    ).split()
)


@dataclass(frozen=True, slots=True)
class Turn:
    """One input, normalised: text, the choice it selects, the command it is."""

    said: UserSaid
    parse: Parse
    text: str
    choice: str | None
    command: str | None

    @property
    def word(self) -> str:
        return " ".join(self.text.lower().strip(" .!?").split())

    def intent(self, ctx: Context) -> str:
        if self.parse.intent != OUT_OF_SCOPE and self.parse.confidence >= ctx.config.min_confidence:
            return self.parse.intent
        return OUT_OF_SCOPE

    def entity(self, name: str) -> str | None:
        return next((e.value for e in self.parse.entities if e.name == name), None)

    @property
    def attachments(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(a.as_dict() for a in self.said.attachments)


def decide(state: DialogState, parse: Parse, said: UserSaid, ctx: Context) -> Decision:
    """What to say and do for one customer input, and the state after it."""
    turn = _read(state, parse, said)
    if len(said.text) > ctx.config.max_text_chars:
        return Decision(
            state, (Say("input.too_long", {"limit": ctx.config.max_text_chars}),), keep_options=True
        )
    if any((a.size or 0) > ctx.config.max_upload_bytes for a in said.attachments):
        limit = ctx.config.max_upload_bytes // (1024 * 1024)
        return Decision(state, (Say("input.file_too_big", {"limit": limit}),), keep_options=True)
    if said.choice is not None and not _still_open(state, said.choice):
        return _stale_choice(state)
    if said.edited:
        return _edited(state, turn, ctx)
    if turn.command is not None:
        return _command(state, turn, ctx)
    if turn.choice and turn.choice.startswith(TICKET_CHOICE):
        return _show_ticket(state, ctx, turn.choice.removeprefix(TICKET_CHOICE))
    if turn.choice and turn.choice.startswith(RATE_CHOICE):
        return _rate_choice(state, turn, ctx)
    if state.name != "idle" and _is_cancel(state, turn, ctx):
        return _cancel(state)
    handler = HANDLERS.get(state.name, _idle)
    return handler(state, turn, ctx)


# --- reading the input -----------------------------------------------------------------


def _read(state: DialogState, parse: Parse, said: UserSaid) -> Turn:
    text = said.text.strip()
    choice = _choice_of(state, said)
    return Turn(said, parse, text, choice, _command_of(text, choice))


def _choice_of(state: DialogState, said: UserSaid) -> str | None:
    text = said.text.strip()
    choice = said.choice
    if choice is None and text:
        choice = _offered_choice(state, text)
    if choice and choice.startswith(ASSISTANT_CHOICE):
        choice = None  # the engine has already put the picked choice's text in its place
    return choice


def _command_of(text: str, choice: str | None) -> str | None:
    source = choice if choice and choice.startswith("/") else text
    if not source.startswith("/"):
        return None
    # Telegram appends the bot's name in groups: /status@careline_bot.
    return source.split()[0].split("@")[0].lower()


def reads_contact(state: DialogState, said: UserSaid) -> bool:
    """Whether deciding this input reads the customer's contact facts (`CustomerView.notify`,
    `phone`, `texts`): the ticket summary says where updates go, /phone shows the number."""
    if state.name.startswith("intake_"):
        return True
    return _command_of(said.text.strip(), _choice_of(state, said)) == "/phone"


def _offered_choice(state: DialogState, text: str) -> str | None:
    offered = state.slot("offered") or []
    menu = Reply("", tuple(Choice(label, value) for label, value in offered))
    picked = menu.choice_for(text)
    return picked.value if picked is not None else None


def chosen_value(state: DialogState, said: UserSaid) -> str | None:
    """The offered choice this input selects (pressed, or typed as its number or label)."""
    if said.choice is not None:
        return said.choice
    return _offered_choice(state, said.text.strip()) if said.text.strip() else None


def _still_open(state: DialogState, value: str) -> bool:
    offered = {value for _, value in state.slot("offered") or []}
    return value in offered or value.startswith(ALWAYS_OPEN)


def _stale_choice(state: DialogState) -> Decision:
    """A button of an earlier message, or pressed twice: it does nothing, and says so."""
    current = tuple(Option(value, label=label) for label, value in state.slot("offered") or [])
    return Decision(state, (Say("input.stale_choice", {}, current),), keep_options=True)


def picked_assistant_text(state: DialogState, said: UserSaid) -> str | None:
    """The text of the assistant's choice the customer picked (pressed, or typed its number
    or label), which the assistant must read as if typed; None when no such choice."""
    value = chosen_value(state, said)
    if value is not None and not _still_open(state, value):
        return None
    texts = state.slot("assistant_choices") or []
    index = (value or "").removeprefix(ASSISTANT_CHOICE)
    if value and value.startswith(ASSISTANT_CHOICE) and index.isdigit() and int(index) < len(texts):
        return str(texts[int(index)])
    return None


def _is_cancel(state: DialogState, turn: Turn, ctx: Context) -> bool:
    if turn.choice is not None:  # an offered choice, pressed or typed ("Stop the texts")
        return False
    if turn.word in CANCEL_WORDS:
        return True
    # In free-text states the customer's own words may well contain "cancel".
    return state.name not in FREE_TEXT_STATES and turn.intent(ctx) == "cancel"


def _reset(state: DialogState, name: str = "idle", **slots: Any) -> DialogState:
    kept = {k: v for k, v in state.slots.items() if k in LASTING_SLOTS}
    kept.update(slots)
    return DialogState(name, kept, state.history)


def _with(state: DialogState, name: str, **slots: Any) -> DialogState:
    return DialogState(name, {**state.slots, **slots}, state.history)


MENU = (
    Option("/new", "menu.complain"),
    Option("/status", "menu.status"),
    Option("/human", "menu.human"),
    Option("/mydata", "menu.mydata"),
)


# --- commands ----------------------------------------------------------------------------


def _command(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    command = turn.command
    if command == "/start":
        return Decision(_reset(state), (_greeting(ctx),))
    if command == "/help":
        return _help(state)
    if command == "/new":
        return _start_complaint(_reset(state), turn, ctx, with_text=False)
    if command == "/status":
        return _status(_reset(state), ctx)
    if command == "/human":
        return _human(state, turn, ctx)
    if command == "/cancel":
        return _cancel(state)
    if command == "/mydata":
        return _data_menu(_reset(state))
    if command == "/language":
        return _language_menu(_reset(state), ctx)
    if command == "/calls":
        return _calls_menu(_reset(state), turn)
    if command == "/phone":
        return _phone_menu(_reset(state), turn, ctx)
    return Decision(state, (Say("input.unknown_command", {"commands": " ".join(COMMANDS)}),))


def _help(state: DialogState) -> Decision:
    return Decision(_reset(state), (Say("help", {"commands": " ".join(COMMANDS)}, MENU),))


def _cancel(state: DialogState) -> Decision:
    ticket_id = state.slot("ticket_id")
    if state.name == "idle" and ticket_id is None:
        return Decision(state, (Say("cancel.nothing", {}, MENU),))
    # From a handover, cancel gives the bot back; the ticket itself stays open.
    return Decision(_reset(state, ticket_id=None), (Say("cancel.done", {}, MENU),))


def _edited(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    handover = _handover_ticket(state, ctx)
    if handover is not None and turn.text:
        edited = AddToTicket(handover.id, f"(edited) {turn.text}")
        return Decision(
            state, (Say("handover.receipt", {"reference": handover.reference}),), (edited,)
        )
    return Decision(state, (Say("input.edited"),), keep_options=True)


# --- idle: free text, intents ------------------------------------------------------------


def _idle(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    state = _reset(state, misses=state.slot("misses", 0))
    handover = _handover_ticket(state, ctx)
    if handover is not None and (turn.text or turn.said.attachments):
        add = AddToTicket(handover.id, turn.text, turn.attachments, _external_id(turn))
        return Decision(
            state, (Say("handover.receipt", {"reference": handover.reference}),), (add,)
        )
    if not turn.text:
        key = "input.unsupported" if turn.said.attachments else "input.empty"
        return Decision(state, (Say(key, {}, MENU),))
    intent = asked = turn.intent(ctx)
    state = _with(state, "idle", misses=0) if intent != OUT_OF_SCOPE else state
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
        return _human(state, turn, ctx)
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
    state = _with(state, "idle", assistant_choices=[c.text for c in assistant.choices])
    # faq.answer is the catalogue's verbatim text ("{answer}").
    return Decision(state, (Say("faq.answer", {"answer": "\n\n".join(assistant.texts)}, options),))


def _not_understood(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    resolved = ctx.recently_resolved()
    if resolved is not None:
        return _ask_new_or_reopen(state, resolved, pending=turn.text)
    misses = int(state.slot("misses", 0)) + 1
    state = _with(state, "idle", misses=misses)
    gap = (NoteGap(turn.text, GapReason.NOT_UNDERSTOOD),)
    if misses >= ctx.config.misses_before_human:
        return Decision(state, (Say("input.not_understood_again", {}, MENU),), gap)
    return Decision(state, (Say("input.not_understood", {}, MENU),), gap)


def _faq(state: DialogState, answer: str) -> Decision:
    helped = (Option("yes", "common.yes"), Option("no", "common.no"))
    return Decision(
        _with(state, "faq_feedback"),
        (Say("faq.answer", {"answer": answer}), Say("faq.did_it_help", {}, helped)),
    )


def _grounded(state: DialogState, found: Passage, question: str) -> Decision:
    """A paragraph of a published article as written, and its title; when the best match
    is weak, no quote at all: the bot says it is not sure and offers a ticket or a person."""
    if not found.confident:
        unsure = NoteGap(question, GapReason.UNSURE, found.article_id)
        said = (Say("knowledge.unsure", {}, FAQ_OFFERS),)
        return Decision(_with(state, "faq_offer"), said, (unsure,))
    helped = (Option("yes", "common.yes"), Option("no", "common.no"))
    answered = [found.article_id, found.version]
    state = _with(state, "faq_feedback", answered=answered, asked=question)
    source = {"passage": found.text, "title": found.title}
    return Decision(state, (Say("knowledge.answer", source), Say("faq.did_it_help", {}, helped)))


def _greet(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (_greeting(ctx),))


def _greeting(ctx: Context) -> Say:
    """By first name when we know one; never "Hi !" when we don't."""
    name = _first_name(ctx)
    return Say("greet", {"name": name}, MENU) if name else Say("greet_anonymous", {}, MENU)


def _goodbye(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("goodbye"),))


def _thanks(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("thanks"),))


def _nothing_to_cancel(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return Decision(state, (Say("cancel.nothing", {}, MENU),))


def _complain(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return _start_complaint(state, turn, ctx, with_text=True)


def _status_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    reference = turn.entity("ticket_ref")
    if reference is not None:
        return _show_ticket(state, ctx, str(ticket_id_from_reference(reference)))
    return _status(state, ctx)


def _data_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return _data_menu(state)


def _help_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    return _help(state)


# --- complaint intake --------------------------------------------------------------------


def _start_complaint(state: DialogState, turn: Turn, ctx: Context, *, with_text: bool) -> Decision:
    resolved = ctx.recently_resolved()
    if resolved is not None and not state.slot("reopen_asked"):
        pending = turn.text if with_text and _is_description(turn.text) else None
        return _ask_new_or_reopen(state, resolved, pending=pending)
    if with_text and _is_description(turn.text):
        intake = {"description": turn.text, "external_id": _external_id(turn)}
        return _ask_category(_reset(state, "intake_category", intake=intake), ctx)
    return Decision(
        _reset(state, "intake_description", intake={}), (Say("intake.ask_description"),)
    )


def _is_description(text: str) -> bool:
    """Does the text say what is wrong, beyond "I want to make a complaint"?"""
    if text.startswith("/"):
        return False
    words = [w.strip(".,!?;:'\"").lower() for w in text.split()]
    return sum(1 for w in words if w and w not in REQUEST_WORDS) >= DESCRIPTION_WORDS


def _intake(state: DialogState, **changes: Any) -> dict[str, Any]:
    return {**(state.slot("intake") or {}), **changes}


def _on_description(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if not turn.text and not turn.said.attachments:
        return Decision(state, (Say("intake.ask_description"),))
    intake = _intake(
        state,
        description=turn.text or "(attachment)",
        attachments=[dict(a) for a in turn.attachments],
        external_id=_external_id(turn),
    )
    return _ask_category(_with(state, "intake_category", intake=intake), ctx)


def _category_label(category: str) -> Phrase:
    return Phrase(f"category.{category}", fallback=category.replace("_", " ").title())


def _ask_category(state: DialogState, ctx: Context) -> Decision:
    options = tuple(
        Option(f"cat:{c}", f"category.{c}", label=_category_label(c).fallback)
        for c in ctx.config.categories
    )
    return Decision(_with(state, "intake_category"), (Say("intake.ask_category", {}, options),))


def _on_category(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    category = (turn.choice or "").removeprefix("cat:") if turn.choice else turn.word
    if category not in ctx.config.categories:
        return _ask_category(state, ctx)
    state = _with(state, "intake_priority", intake=_intake(state, category=category))
    return _ask_priority(state, ctx)


def _ask_priority(state: DialogState, ctx: Context) -> Decision:
    options = tuple(Option(f"prio:{p.value}", f"priority.{p.value}") for p in ctx.config.priorities)
    return Decision(_with(state, "intake_priority"), (Say("intake.ask_priority", {}, options),))


def _on_priority(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice and turn.choice.startswith("prio:"):
        value = turn.choice.removeprefix("prio:")
    else:
        value = turn.entity("priority") or turn.word
    if value not in {p.value for p in ctx.config.priorities}:
        return _ask_priority(state, ctx)
    state = _with(state, "intake_email", intake=_intake(state, priority=value))
    if ctx.customer.can_receive_email:
        return _ask_confirm(state, ctx)
    return Decision(state, (Say("email.ask", {}, (Option("skip", "common.skip"),)),))


def _on_email(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "skip" or turn.word in {"skip", "no", "no thanks"}:
        return _ask_confirm(state, ctx)
    email = normalise_email(turn.entity("email") or turn.text)
    if email is None:
        return Decision(state, (Say("email.invalid", {}, (Option("skip", "common.skip"),)),))
    return _send_code(_with(state, "intake_code", intake=_intake(state, email=email)), email)


def _send_code(state: DialogState, email: str) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    return Decision(
        _with(state, "intake_code"),
        (Say("email.code_sent", {"email": email}, options),),
        (RequestEmailCode(email),),
    )


def _on_code(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    intake = state.slot("intake") or {}
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    if turn.choice == "skip" or turn.word == "skip":
        return _ask_confirm(_with(state, "intake_confirm", intake=_intake(state, email=None)), ctx)
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
            _with(state, "intake_notify", intake=_intake(state, verified=True)),
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
    return _ask_confirm(_with(state, "intake_confirm", intake=_intake(state, email=None)), ctx)


def _on_notify(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    value = (turn.choice or "").removeprefix("notify:") or turn.word
    if value not in {n.value for n in Notify}:
        return _ask_notify(state)
    decision = _ask_confirm(_with(state, state.name, intake=_intake(state, notify=value)), ctx)
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
        "description": _shorten(str(intake.get("description", "")), 300),
        "category": _category_label(str(intake.get("category", ""))),
        "priority": Phrase(f"priority.{intake.get('priority')}", fallback=""),
    }
    says = [Say("intake.summary", params)]
    if email:
        notify = Notify(intake.get("notify") or ctx.customer.notify)
        says.append(Say(f"intake.updates_{notify.value}", {"email": email}))
    options = (Option("confirm", "intake.confirm"), Option("/cancel", "common.cancel"))
    says.append(Say("intake.ask_confirm", {}, options))
    return Decision(_with(state, "intake_confirm"), tuple(says))


def _on_confirm(state: DialogState, turn: Turn, ctx: Context) -> Decision:
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
    return Decision(_reset(state, reopen_asked=None), (), (action,))


# --- status --------------------------------------------------------------------------------


def _status(state: DialogState, ctx: Context) -> Decision:
    tickets = ctx.tickets[: ctx.config.status_list_size]
    if not tickets:
        return Decision(
            _reset(state), (Say("status.none", {}, (Option("/new", "menu.complain"),)),)
        )
    lines = tuple(
        Phrase(
            "status.line",
            {
                "reference": t.reference,
                "subject": _shorten(t.subject, 60),
                "status": Phrase(f"status.{t.status.value}"),
            },
        )
        for t in tickets
    )
    options = tuple(Option(f"{TICKET_CHOICE}{t.id}", label=t.reference) for t in tickets)
    return Decision(
        _reset(state, "status_pick"), (Say("status.list", {"tickets": lines}, options),)
    )


def _show_ticket(state: DialogState, ctx: Context, raw_id: str) -> Decision:
    ticket = ctx.ticket(int(raw_id)) if raw_id.isdigit() else None
    if ticket is None:
        return Decision(_reset(state), (Say("status.unknown_ticket"),))
    return Decision(_reset(state), (), (ShowTicket(ticket.id),))


def _on_status_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    reference = turn.entity("ticket_ref") or turn.text
    ticket_id = ticket_id_from_reference(reference)
    if ticket_id is not None:
        return _show_ticket(state, ctx, str(ticket_id))
    return _idle(_reset(state), turn, ctx)


# --- a person, new or reopen --------------------------------------------------------------


def _human(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    handover = _handover_ticket(state, ctx) or next((t for t in ctx.tickets if t.is_active), None)
    intake = state.slot("intake") or {}
    action = RequestHuman(
        ticket_id=handover.id if handover is not None else None,
        summary=_summary(state, turn),
        description=str(intake.get("description") or "") or _own_words(state, turn),
    )
    return Decision(_reset(state), (), (action,))


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


def _ask_new_or_reopen(state: DialogState, ticket: TicketView, *, pending: str | None) -> Decision:
    options = (
        Option("reopen", "reopen.about_it", params={"reference": ticket.reference}),
        Option("new", "reopen.something_new"),
    )
    params = {"reference": ticket.reference, "subject": _shorten(ticket.subject, 60)}
    state = _reset(state, "new_or_reopen", reopen_ticket=ticket.id, pending=pending)
    return Decision(state, (Say("reopen.ask", params, options),))


def _on_new_or_reopen(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("reopen_ticket"))
    pending = state.slot("pending")
    if turn.choice == "reopen" and ticket is not None:
        if pending:
            return Decision(
                _reset(state),
                (Say("reopen.done", {"reference": ticket.reference}),),
                (AddToTicket(ticket.id, pending),),
            )
        return Decision(
            _with(state, "reopen_text"), (Say("reopen.ask_text", {"reference": ticket.reference}),)
        )
    if turn.choice == "new" or ticket is None:
        state = _reset(state, reopen_asked=True)
        if pending:
            intake = {"description": pending}
            return _ask_category(_with(state, "intake_category", intake=intake), ctx)
        return Decision(
            _with(state, "intake_description", intake={}), (Say("intake.ask_description"),)
        )
    return _idle(_reset(state), turn, ctx)


def _on_reopen_text(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("reopen_ticket"))
    if ticket is None or not (turn.text or turn.said.attachments):
        return _idle(_reset(state), turn, ctx)
    add = AddToTicket(ticket.id, turn.text, turn.attachments, _external_id(turn))
    return Decision(_reset(state), (Say("reopen.done", {"reference": ticket.reference}),), (add,))


# --- FAQ feedback --------------------------------------------------------------------------


FAQ_OFFERS = (
    Option("/new", "faq.offer_ticket"),
    Option("/human", "faq.offer_human"),
    Option("no_thanks", "common.no_thanks"),
)


def _on_faq_feedback(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "yes" or turn.word in YES_WORDS or turn.intent(ctx) in ("affirm", "thanks"):
        return Decision(_reset(state), (Say("faq.glad"),), _rated(state, helped=True))
    if turn.choice == "no" or turn.word in NO_WORDS or turn.intent(ctx) == "deny":
        said = (Say("faq.sorry", {}, FAQ_OFFERS),)
        return Decision(_with(state, "faq_offer"), said, _rated(state, helped=False))
    return _idle(_reset(state), turn, ctx)


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


def _on_faq_offer(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "no_thanks" or turn.word in NO_WORDS:
        return Decision(_reset(state), (Say("common.ok"),))
    return _idle(_reset(state), turn, ctx)


# --- rating ----------------------------------------------------------------------------------

SCORE_OPTIONS = tuple(Option(str(n), f"rate.score_{n}") for n in SCORES)


def _rate_intent(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.unrated()
    if ticket is None:
        return Decision(state, (Say("rate.nothing"),))
    return _ask_score(state, ticket)


def _ask_score(state: DialogState, ticket: TicketView) -> Decision:
    state = _reset(state, "rate_score", rate_ticket=ticket.id)
    return Decision(state, (Say("rate.ask", {"reference": ticket.reference}, SCORE_OPTIONS),))


def _rate_choice(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    named, score = read_rate_choice(turn.choice or "")
    ticket_id = None
    if named is not None:
        ticket_id = int(named) if named.isdigit() else ticket_id_from_reference(named)
    ticket = ctx.ticket(ticket_id) if ticket_id is not None else None
    if ticket is None:
        return Decision(_reset(state), (Say("status.unknown_ticket"),))
    if score is not None:
        return _ask_comment(state, ticket.id, score)
    return _ask_score(state, ticket)


def _ask_comment(state: DialogState, ticket_id: int, score: int) -> Decision:
    """The score is recorded now; the comment is optional and may never come."""
    state = _reset(state, "rate_comment", rate_ticket=ticket_id)
    ask = Say("rate.ask_comment", {}, (Option("skip", "common.skip"),))
    return Decision(state, (ask,), (RateTicket(ticket_id, score),))


def _on_score(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    ticket = ctx.ticket(state.slot("rate_ticket"))
    if ticket is None:
        return _idle(_reset(state), turn, ctx)
    score = turn.choice or turn.word
    if score in {"1", "2", "3", "4", "5"}:
        return _ask_comment(state, ticket.id, int(score))
    return Decision(state, (Say("rate.ask", {"reference": ticket.reference}, SCORE_OPTIONS),))


def _on_comment(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if state.slot("rate_ticket") is None:
        return _idle(_reset(state), turn, ctx)
    comment = None if turn.choice == "skip" or turn.word == "skip" else turn.text or None
    actions = (CommentOnRating(int(state.slot("rate_ticket")), comment),) if comment else ()
    return Decision(_reset(state), (Say("rate.thanks"),), actions)


# --- my data --------------------------------------------------------------------------------


def _language_menu(state: DialogState, ctx: Context) -> Decision:
    """Each language the bot speaks, named in itself."""
    options = tuple(Option(f"lang:{code}", label=name) for code, name in ctx.languages)
    return Decision(_reset(state, "language_pick"), (Say("language.ask", {}, options),))


def _on_language_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    code = (turn.choice or "").removeprefix("lang:")
    if turn.choice and turn.choice.startswith("lang:") and code in dict(ctx.languages):
        return Decision(_reset(state), (Say("language.set"),), (SetLanguage(code),))
    return _idle(_reset(state), turn, ctx)


def _calls_menu(state: DialogState, turn: Turn) -> Decision:
    """Calls go to the number the customer texts from: only an SMS conversation has one."""
    if turn.said.channel != Channel.SMS:
        return Decision(state, (Say("calls.no_phone"),))
    options = (Option("calls:on", "calls.accept"), Option("calls:off", "calls.decline"))
    return Decision(_reset(state, "calls_pick"), (Say("calls.ask", {}, options),))


def _on_calls_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice in ("calls:on", "calls:off"):
        on = turn.choice == "calls:on"
        return Decision(
            _reset(state), (Say("calls.enabled" if on else "calls.disabled"),), (SetCalls(on),)
        )
    return _idle(_reset(state), turn, ctx)


def _phone_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    """Notices by text to a phone confirmed with a texted code, for customers of other chats."""
    if turn.said.channel == Channel.SMS:
        return Decision(state, (Say("phone.here"),))
    if not ctx.config.texts:
        return Decision(state, (Say("phone.unavailable"),))
    if ctx.customer.phone and ctx.customer.texts:
        options = (Option("phone:stop", "phone.stop"), Option("phone:change", "phone.change"))
        said = Say("phone.current", {"phone": ctx.customer.phone}, options)
        return Decision(_reset(state, "phone_menu"), (said,))
    return _ask_phone(state)


def _ask_phone(state: DialogState) -> Decision:
    skip = (Option("skip", "common.skip"),)
    return Decision(_reset(state, "phone_number"), (Say("phone.ask", {}, skip),))


def _on_phone_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "phone:stop":
        return Decision(_reset(state), (Say("phone.stopped"),), (SetTexts(False),))
    if turn.choice == "phone:change":
        return _ask_phone(state)
    return _idle(_reset(state), turn, ctx)


def _on_phone_number(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    skip = (Option("skip", "common.skip"),)
    if turn.choice == "skip" or turn.word == "skip":
        return Decision(_reset(state), (Say("phone.skipped"),))
    number = e164(turn.text, ctx.config.phone_region, mobile=True)
    if number is None:
        return Decision(state, (Say("phone.invalid", {}, skip),))
    return _send_phone_code(_with(state, "phone_code", phone=number), number)


def _send_phone_code(state: DialogState, number: str) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    said = Say("phone.code_sent", {"phone": number}, options)
    return Decision(state, (said,), (RequestPhoneCode(number),))


def _on_phone_code(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    if turn.choice == "skip" or turn.word == "skip":
        return Decision(_reset(state), (Say("phone.skipped"),))
    if turn.choice == "resend" or turn.word == "resend":
        return _send_phone_code(state, str(state.slot("phone")))
    result = check_code(ctx.verification, turn.text, ctx.now)
    if result.check == CodeCheck.VERIFIED:
        said = Say("phone.verified", {"phone": result.email})
        return Decision(_reset(state), (said,), (ConfirmPhoneCode(turn.text),))
    if result.check == CodeCheck.WRONG:
        said = Say("email.code_wrong", {"n": result.attempts_left}, options)
        return Decision(state, (said,), (ConfirmPhoneCode(turn.text),))
    if result.check == CodeCheck.EXPIRED:
        return Decision(state, (Say("email.code_expired", {}, options),))
    return _ask_phone(state)


def e164(text: str, region: str, *, mobile: bool = False) -> str | None:
    """A typed phone number in E.164 (`+447700900123`), or None when it is not one (with
    `mobile`, when it is not one that can take texts: a landline, a toll-free number)."""
    import phonenumbers  # 80 ms and 5 MB: only once a number is read, never at start

    try:
        parsed = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    if mobile and phonenumbers.number_type(parsed) not in kinds:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _data_menu(state: DialogState) -> Decision:
    options = (
        Option("export", "data.export"),
        Option("erase", "data.erase"),
        Option("/cancel", "common.cancel"),
    )
    return Decision(_reset(state, "data_menu"), (Say("data.menu", {}, options),))


def _on_data_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "export" or turn.word == "export":
        return Decision(_reset(state), (), (ExportData(),))
    if turn.choice == "erase" or turn.word == "erase":
        options = (Option("erase_yes", "data.erase_yes"), Option("erase_no", "data.erase_no"))
        return Decision(_with(state, "erase_confirm"), (Say("data.erase_confirm", {}, options),))
    return _idle(_reset(state), turn, ctx)


def _on_erase_confirm(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "erase_yes":
        return Decision(DialogState(), (Say("data.erased"),), (EraseData(),))
    return Decision(_reset(state), (Say("data.kept"),))


# --- helpers ------------------------------------------------------------------------------


def _handover_ticket(state: DialogState, ctx: Context) -> TicketView | None:
    ticket = ctx.ticket(state.slot("ticket_id"))
    return ticket if ticket is not None and ticket.is_active else None


def _external_id(turn: Turn) -> str | None:
    # Platform message ids are unique per chat, not per channel (Telegram), so the chat is
    # part of the key stored under the messages table's unique (channel, external_id).
    said = turn.said
    return f"{said.chat_id}:{said.message_id}" if said.message_id else None


def _first_name(ctx: Context) -> str:
    return ctx.customer.name.split()[0] if ctx.customer.name.strip() else ""


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


Handler = Callable[[DialogState, Turn, Context], Decision]

INTENT_HANDLERS: dict[str, Handler] = {
    "greet": _greet,
    "help": _help_intent,
    "goodbye": _goodbye,
    "thanks": _thanks,
    "cancel": _nothing_to_cancel,
    "complain": _complain,
    "ticket_status": _status_intent,
    "human": _human,
    "my_data": _data_intent,
    "rate": _rate_intent,
}

HANDLERS: dict[str, Handler] = {
    "idle": _idle,
    "faq_feedback": _on_faq_feedback,
    "faq_offer": _on_faq_offer,
    "intake_description": _on_description,
    "intake_category": _on_category,
    "intake_priority": _on_priority,
    "intake_email": _on_email,
    "intake_code": _on_code,
    "intake_notify": _on_notify,
    "intake_confirm": _on_confirm,
    "new_or_reopen": _on_new_or_reopen,
    "reopen_text": _on_reopen_text,
    "status_pick": _on_status_pick,
    "rate_score": _on_score,
    "rate_comment": _on_comment,
    "data_menu": _on_data_menu,
    "language_pick": _on_language_pick,
    "calls_pick": _on_calls_pick,
    "phone_menu": _on_phone_menu,
    "phone_number": _on_phone_number,
    "phone_code": _on_phone_code,
    "erase_confirm": _on_erase_confirm,
}

#: States whose free text is the customer's own words: only a bare "cancel" cancels there.
FREE_TEXT_STATES = frozenset(
    {"intake_description", "reopen_text", "rate_comment", "intake_email", "phone_number"}
)

__all__ = ["COMMANDS", "Action", "decide", "picked_assistant_text", "reads_contact"]
