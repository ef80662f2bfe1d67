"""The NLU port: what the dialog engine asks of any language-understanding backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

#: The intent of anything the classifier is not sure about (or that no intent covers).
OUT_OF_SCOPE = "oos"


@dataclass(frozen=True, slots=True)
class Entity:
    """A value found in the text, with its character span when the backend knows it."""

    name: str
    value: str
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True, slots=True)
class AnswerChoice:
    """A choice the assistant offered: its label, and the text sent back when it is picked."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class AssistantAnswer:
    """What the assistant itself answered (Watson's ``output.generic``), text first: its texts
    (option and suggestion titles included), the choices it offered, and whether it asked to
    connect the customer to a person (``connect_to_agent``)."""

    texts: tuple[str, ...] = ()
    choices: tuple[AnswerChoice, ...] = ()
    to_agent: bool = False

    def __bool__(self) -> bool:
        return bool(self.texts or self.choices or self.to_agent)


@dataclass(frozen=True, slots=True)
class Parse:
    """What a backend understood from one utterance.

    ``intent`` is an intent name from the intents file, or ``OUT_OF_SCOPE``: then
    ``confidence`` is that of the rejected best guess, or of the trained ``oos`` class.
    From Watson, ``intent`` is the skill's own name unless a mapping names a Careline target.
    """

    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    source: str = "local"  # "local", "embeddings", "watson"
    answer: str | None = None  # Watson's text answer when it gave one
    assistant: AssistantAnswer | None = None  # Watson's whole answer when it gave one


class NLU(Protocol):
    """Turns customer text into a ``Parse``. Implementations must not block the event loop."""

    async def parse(self, text: str) -> Parse: ...
