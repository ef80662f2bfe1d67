"""What every flow of the policy shares: the constants, a normalised `Turn`, reading a
choice or a command, and the small state helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dialogs.decisions import (
    RATE_CHOICE,
    TICKET_CHOICE,
    Context,
    Decision,
    DialogState,
    Option,
    Say,
    TicketView,
)
from dialogs.nlu.base import OUT_OF_SCOPE, Parse
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


#: States whose free text is the customer's own words: only a bare "cancel" cancels there.
FREE_TEXT_STATES = frozenset(
    {"intake_description", "reopen_text", "rate_comment", "intake_email", "phone_number"}
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


def read_turn(state: DialogState, parse: Parse, said: UserSaid) -> Turn:
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


def still_open(state: DialogState, value: str) -> bool:
    offered = {value for _, value in state.slot("offered") or []}
    return value in offered or value.startswith(ALWAYS_OPEN)


def stale_choice(state: DialogState) -> Decision:
    """A button of an earlier message, or pressed twice: it does nothing, and says so."""
    current = tuple(Option(value, label=label) for label, value in state.slot("offered") or [])
    return Decision(state, (Say("input.stale_choice", {}, current),), keep_options=True)


def picked_assistant_text(state: DialogState, said: UserSaid) -> str | None:
    """The text of the assistant's choice the customer picked (pressed, or typed its number
    or label), which the assistant must read as if typed; None when no such choice."""
    value = chosen_value(state, said)
    if value is not None and not still_open(state, value):
        return None
    texts = state.slot("assistant_choices") or []
    index = (value or "").removeprefix(ASSISTANT_CHOICE)
    if value and value.startswith(ASSISTANT_CHOICE) and index.isdigit() and int(index) < len(texts):
        return str(texts[int(index)])
    return None


def is_cancel(state: DialogState, turn: Turn, ctx: Context) -> bool:
    if turn.choice is not None:  # an offered choice, pressed or typed ("Stop the texts")
        return False
    if turn.word in CANCEL_WORDS:
        return True
    # In free-text states the customer's own words may well contain "cancel".
    return state.name not in FREE_TEXT_STATES and turn.intent(ctx) == "cancel"


def reset(state: DialogState, name: str = "idle", **slots: Any) -> DialogState:
    kept = {k: v for k, v in state.slots.items() if k in LASTING_SLOTS}
    kept.update(slots)
    return DialogState(name, kept, state.history)


def with_slots(state: DialogState, name: str, **slots: Any) -> DialogState:
    return DialogState(name, {**state.slots, **slots}, state.history)


MENU = (
    Option("/new", "menu.complain"),
    Option("/status", "menu.status"),
    Option("/human", "menu.human"),
    Option("/mydata", "menu.mydata"),
)


def help_menu(state: DialogState) -> Decision:
    return Decision(reset(state), (Say("help", {"commands": " ".join(COMMANDS)}, MENU),))


def cancel(state: DialogState) -> Decision:
    ticket_id = state.slot("ticket_id")
    if state.name == "idle" and ticket_id is None:
        return Decision(state, (Say("cancel.nothing", {}, MENU),))
    # From a handover, cancel gives the bot back; the ticket itself stays open.
    return Decision(reset(state, ticket_id=None), (Say("cancel.done", {}, MENU),))


def greeting(ctx: Context) -> Say:
    """By first name when we know one; never "Hi !" when we don't."""
    name = _first_name(ctx)
    return Say("greet", {"name": name}, MENU) if name else Say("greet_anonymous", {}, MENU)


def handover_ticket(state: DialogState, ctx: Context) -> TicketView | None:
    ticket = ctx.ticket(state.slot("ticket_id"))
    return ticket if ticket is not None and ticket.is_active else None


def external_id(turn: Turn) -> str | None:
    # Platform message ids are unique per chat, not per channel (Telegram), so the chat is
    # part of the key stored under the messages table's unique (channel, external_id).
    said = turn.said
    return f"{said.chat_id}:{said.message_id}" if said.message_id else None


def _first_name(ctx: Context) -> str:
    return ctx.customer.name.split()[0] if ctx.customer.name.strip() else ""


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


Handler = Callable[[DialogState, Turn, Context], Decision]


def to_idle(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    """Read the input as idle would (a flow that does not take it hands it back): imported
    when first called, since the idle flow starts every other flow."""
    from dialogs.policy.idle import idle

    return idle(state, turn, ctx)
