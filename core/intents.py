"""Intent examples the support team edits, and the rules for editing them.

The classifier learns from the intents file (shipped, or `CARELINE_NLU_INTENTS_FILE`) with
the team's edits applied: examples added to an intent (a new intent is made by its first
example) and examples of the file taken out. Every edit bumps the examples' revision; each
replica follows it, and the model of the new examples is trained once, in the background,
and shared through the database (dialogs/nlu/live.py). Services take the repository and
leave the commit to the caller, like core/knowledge.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from core.errors import InvalidInput, NotFound, Refused

if TYPE_CHECKING:
    from core.ports import IntentExamplesRepository

#: `faq_parking`, `cancel_order`: what the policy and the articles' keys name.
INTENT_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_TEXT = 500


class ExampleTaken(Refused):
    code = "example_taken"


class LastExample(Refused):
    code = "last_example"


@dataclass(frozen=True, slots=True)
class LabelledText:
    """One training example: a customer's words and the intent they mean."""

    intent: str
    text: str

    @property
    def id(self) -> str:
        """A stable id for the API (the file's examples have no row of their own)."""
        return example_id(self.intent, self.text)


@dataclass(frozen=True, slots=True)
class ExampleEdit:
    """An added example, or (`removed`) an example of the intents file taken out."""

    intent: str
    text: str
    removed: bool
    changed_by: str
    changed_at: datetime

    @property
    def example(self) -> LabelledText:
        return LabelledText(self.intent, self.text)


@dataclass(frozen=True, slots=True)
class TrainingState:
    """The examples' revision and the last training (one replica trains at a time)."""

    revision: int
    key: str | None = None  # the model being, or last, trained
    by: str | None = None
    until: datetime | None = None  # the trainer's lease; past it another replica takes over
    stage: str | None = None
    progress: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failed_key: str | None = None  # examples that could not be trained are not tried again
    error: str | None = None


def example_id(intent: str, text: str) -> str:
    return hashlib.sha256(f"{intent}\n{text}".encode()).hexdigest()[:16]


def clean_text(text: str) -> str:
    """Spacing as the classifier reads it (runs of white space are one space)."""
    return " ".join(text.split())


def apply_edits(base: Iterable[LabelledText], edits: Iterable[ExampleEdit]) -> list[LabelledText]:
    """The training set: the file's examples less the removed ones, then the added ones."""
    edits = list(edits)
    removed = {edit.example for edit in edits if edit.removed}
    kept = [example for example in base if example not in removed]
    return kept + [edit.example for edit in edits if not edit.removed]


async def add_example(
    repo: IntentExamplesRepository,
    base: Sequence[LabelledText],
    intent: str,
    text: str,
    *,
    by: str,
    now: datetime,
) -> LabelledText:
    """Teach `intent` (new or known) one more way customers say it."""
    if not INTENT_NAME.fullmatch(intent):
        raise InvalidInput(
            f"{intent!r} is not an intent name: lower-case letters, digits and _, up to 64"
        )
    text = clean_text(text)
    if not text or len(text) > MAX_TEXT:
        raise InvalidInput(f"an example has 1 to {MAX_TEXT} characters")
    edits = await repo.edits()
    folded = text.casefold()
    for example in apply_edits(base, edits):
        if example.text.casefold() == folded:
            raise ExampleTaken(f"{text!r} is already an example of {example.intent}")
    example = LabelledText(intent, text)
    if any(edit.removed and edit.example == example for edit in edits):
        await repo.delete(example)  # the file's own example, taken out before: back in
    else:
        await repo.add(ExampleEdit(intent, text, False, by, now))
    await repo.bump_revision()
    return example


async def remove_example(
    repo: IntentExamplesRepository,
    base: Sequence[LabelledText],
    intent: str,
    example: str,
    *,
    by: str,
    now: datetime,
) -> None:
    """Take the example with id `example` out of `intent`. An intent the team made goes with
    its last example; one of the intents file keeps at least one (the dialogs name it)."""
    edits = await repo.edits()
    current = [e for e in apply_edits(base, edits) if e.intent == intent]
    found = next((e for e in current if e.id == example), None)
    if found is None:
        raise NotFound(f"intent {intent} has no example {example}")
    if len(current) == 1 and any(e.intent == intent for e in base):
        raise LastExample(
            f"{found.text!r} is the last example of {intent}, an intent of the intents file: "
            "it keeps at least one"
        )
    if any(not edit.removed and edit.example == found for edit in edits):
        await repo.delete(found)  # added by the team: the row goes
    else:
        await repo.add(ExampleEdit(intent, found.text, True, by, now))
    await repo.bump_revision()


def by_intent(examples: Iterable[LabelledText]) -> dict[str, list[LabelledText]]:
    """Examples grouped by intent, intents sorted by name, examples in training order."""
    grouped: dict[str, list[LabelledText]] = {}
    for example in examples:
        grouped.setdefault(example.intent, []).append(example)
    return dict(sorted(grouped.items()))
