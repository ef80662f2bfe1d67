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
class Parse:
    """What a backend understood from one utterance.

    ``intent`` is an intent name from the intents file, or ``OUT_OF_SCOPE``: then
    ``confidence`` is that of the rejected best guess, or of the trained ``oos`` class.
    """

    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    source: str = "local"  # "local", "embeddings", "watson"
    answer: str | None = None  # Watson's text answer when it gave one


class NLU(Protocol):
    """Turns customer text into a ``Parse``. Implementations must not block the event loop."""

    async def parse(self, text: str) -> Parse: ...
