"""Dialog fixtures: an engine on the `db` fixture (SQLite and PostgreSQL) with a tiny
deterministic NLU, and `verify_dialog` for transcript tests (after Zulip's verify_dialog)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Channel
from dialogs.catalogue import load_catalogue
from dialogs.config import DialogConfig
from dialogs.engine import DialogEngine
from dialogs.nlu import OUT_OF_SCOPE, Parse, extract_entities, load_faq
from dialogs.turn import Attachment, Reply, UserSaid

# First matching pattern wins; anything else is out of scope.
RULES: list[tuple[str, str]] = [
    (r"^(hi|hello|hey)\b", "greet"),
    (r"^(help|what can you do)", "help"),
    (r"\b(open|opening hours)\b.*\b(open|hours)\b|when are you open", "faq_opening_hours"),
    (r"refund", "faq_refund_policy"),
    (r"warp drive", "faq_warp_drive"),  # an FAQ intent without an answer in the file
    (r"\b(person|human|agent)\b", "human"),
    (r"\b(complain|complaint|broken|problem)\b", "complain"),
    (r"\b(status|my tickets)\b", "ticket_status"),
    (r"\bmy data\b", "my_data"),
    (r"\brate\b", "rate"),
    (r"^(thanks|thank you)", "thanks"),
    (r"^(bye|goodbye)", "goodbye"),
    (r"^(yes|sure)$", "affirm"),
    (r"^(no|nope)$", "deny"),
]


class ScriptedNLU:
    """Keyword rules in place of a classifier: transcripts test the dialog, not the model."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def parse(self, text: str) -> Parse:
        self.calls.append(text)
        lowered = text.lower().strip()
        for pattern, intent in RULES:
            if re.search(pattern, lowered):
                return Parse(intent, 0.9, extract_entities(text), source="scripted")
        return Parse(OUT_OF_SCOPE, 0.1, extract_entities(text), source="scripted")


CONFIG = DialogConfig(categories=("billing", "telecom", "other"), max_text_chars=500)


def make_engine(
    db: Database, nlu: object | None = None, config: DialogConfig = CONFIG
) -> DialogEngine:
    return DialogEngine(
        db,
        nlu or ScriptedNLU(),  # type: ignore[arg-type]
        config,
        load_catalogue(strict=True),  # a missing text fails the test
        faq=load_faq(),
    )


@pytest.fixture
def engine(db: Database) -> DialogEngine:
    return make_engine(db)


@dataclass(frozen=True)
class Press:
    """A button press (UserSaid.choice) rather than typed text; Telegram and the web chat
    send the button's label as the text."""

    value: str
    label: str = ""


@dataclass(frozen=True)
class Send:
    """Anything else a customer can send: attachments, edits, explicit message ids."""

    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    edited: bool = False
    message_id: str | None = None
    language: str = "en"


Step = tuple[str | Press | Send, str | Sequence[str] | None]


@dataclass
class Customer:
    """One customer on one channel; numbers their messages like a platform would."""

    engine: DialogEngine
    user_id: str = "u1"
    channel: Channel = Channel.TELEGRAM
    name: str = "Ada Lovelace"
    counter: int = 0
    last: list[Reply] = field(default_factory=list)

    def said(self, what: str | Press | Send) -> UserSaid:
        self.counter += 1
        message_id = f"m{self.counter}"
        base = dict(
            channel=self.channel,
            user_id=self.user_id,
            chat_id=f"chat-{self.user_id}",
            display_name=self.name,
        )
        if isinstance(what, Press):
            return UserSaid(
                **base,  # type: ignore[arg-type]
                text=what.label,
                choice=what.value,
                message_id=message_id,
            )
        if isinstance(what, Send):
            return UserSaid(
                **base,  # type: ignore[arg-type]
                text=what.text,
                attachments=what.attachments,
                edited=what.edited,
                message_id=what.message_id or message_id,
                language=what.language,
            )
        return UserSaid(**base, text=what, message_id=message_id)  # type: ignore[arg-type]

    async def say(self, what: str | Press | Send) -> str:
        self.last = await self.engine.handle_turn(self.said(what))
        return plain(self.last)


def plain(replies: Sequence[Reply]) -> str:
    return "\n---\n".join(reply.as_plain_text() for reply in replies)


async def verify_dialog(
    engine: DialogEngine | Customer, steps: Sequence[Step], *, user_id: str = "u1"
) -> Customer:
    """Play the customer's side; each bot answer must contain the expected substring(s).

    `None` expects no reply at all (a redelivery).
    """
    customer = engine if isinstance(engine, Customer) else Customer(engine, user_id=user_id)
    for number, (what, expected) in enumerate(steps, start=1):
        answer = await customer.say(what)
        if expected is None:
            assert customer.last == [], f"step {number} {what!r}: expected silence, got {answer!r}"
            continue
        wanted = [expected] if isinstance(expected, str) else list(expected)
        for piece in wanted:
            assert piece.lower() in answer.lower(), (
                f"step {number}: customer said {what!r}\nexpected {piece!r} in:\n{answer}"
            )
    return customer


def file_complaint_steps() -> list[Step]:
    """A whole complaint, from intent to the ticket reference."""
    return [
        ("I want to complain", "describe the problem"),
        ("My internet has been down since Monday", "which area"),
        (Press("cat:telecom"), "how urgent"),
        (Press("prio:high"), "email"),
        (Press("skip"), ["internet has been down", "Telecom", "High", "open it"]),
        (Press("confirm"), "CR-1001"),
    ]


# --- the other side: agents and ticket facts, straight through the domain ----------------


async def only_ticket(db: Database) -> int:
    async with db.engine.connect() as conn:
        ids = (await conn.execute(select(t.tickets.c.id))).scalars().all()
    assert len(ids) == 1, ids
    return int(ids[0])


async def new_agent(db: Database, name: str = "Grace Hopper") -> int:
    async with db.uow() as uow:
        agent = await services.create_agent(
            uow, name=name, email=f"{name.split()[0].lower()}@example.com"
        )
        await uow.commit()
    assert agent.id is not None
    return agent.id
