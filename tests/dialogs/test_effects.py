"""Every action the policy can decide has its effect in the engine's table."""

from __future__ import annotations

from dialogs import decisions
from dialogs.engine import EFFECTS


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
