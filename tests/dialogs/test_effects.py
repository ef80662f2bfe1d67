"""Every action the policy can decide has its effect in the engine's table, and the turn's
own writes (the chat an identity writes from)."""

from __future__ import annotations

from dataclasses import replace

from core.db.database import Database
from core.model import Channel
from dialogs import decisions
from dialogs.engine import EFFECTS
from tests.dialogs.conftest import Customer, make_engine


def _subclasses(cls: type) -> set[type]:
    # A slots dataclass is a new class: the one it replaced lingers in __subclasses__.
    found = {sub for sub in cls.__subclasses__() if getattr(decisions, sub.__name__, None) is sub}
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_action_has_an_effect() -> None:
    actions = _subclasses(decisions.Action)
    assert actions, "the policy decides some actions"
    assert actions == set(EFFECTS), "add the new action's effect to dialogs.engine.EFFECTS"


async def test_a_customer_writing_from_another_chat_is_answered_there_from_now_on(
    db: Database,
) -> None:
    engine = make_engine(db)
    ada = Customer(engine)
    await ada.say("hello")
    moved = replace(ada.said("hello again"), chat_id="chat-new")
    await engine.handle_turn(moved)
    async with db.uow() as uow:
        identity = await uow.customers.identity(Channel.TELEGRAM, "u1")
        assert identity is not None and identity.chat_id == "chat-new"
        record = await uow.dialogs.load(Channel.TELEGRAM, "u1")
        assert record is not None and record.chat_id == "chat-new"
