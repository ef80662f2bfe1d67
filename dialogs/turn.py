"""What crosses the boundary between channels and the dialog engine, channel-neutral."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.model import Channel
from core.ports import DialogUnitOfWork


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the customer sent: the platform's file id and, once copied, the stored file's id;
    never a URL with secrets."""

    kind: str  # photo, document, voice, video, audio, file
    file_id: str | None = None
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    stored_id: str | None = None  # its bytes in Careline's file store (core.files)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "file_id": self.file_id,
            "name": self.name,
            "mime_type": self.mime_type,
            "size": self.size,
            "stored_id": self.stored_id,
        }


@dataclass(frozen=True, slots=True)
class UserSaid:
    """One inbound customer message, whatever the channel."""

    channel: Channel
    user_id: str  # the platform's user id
    chat_id: str  # where replies go
    text: str = ""
    message_id: str | None = None  # the platform's message id (dedupe key)
    display_name: str = ""
    language: str = "en"
    attachments: tuple[Attachment, ...] = ()
    choice: str | None = None  # the value of a pressed button, when one was pressed
    edited: bool = False  # an edit of an earlier message (the earlier text is kept)


@dataclass(frozen=True, slots=True)
class Choice:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Text first, rich second: every reply reads well as plain text."""

    text: str
    choices: tuple[Choice, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """As stored (the inbox's answered replies, the engine's remembered answers)."""
        if not self.choices:
            return {"text": self.text}
        return {"text": self.text, "choices": [[c.label, c.value] for c in self.choices]}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Reply:
        choices = data.get("choices") or ()
        return Reply(data["text"], tuple(Choice(label, value) for label, value in choices))

    def as_plain_text(self) -> str:
        """Choices as a numbered list, for channels without buttons."""
        if not self.choices:
            return self.text
        lines = [f"{i}. {c.label}" for i, c in enumerate(self.choices, start=1)]
        return "\n".join([self.text, "", *lines])

    def choice_for(self, answer: str) -> Choice | None:
        """Map a typed answer ("2", or a label) to one of this reply's choices."""
        text = answer.strip().lower()
        if text.isdigit() and 1 <= int(text) <= len(self.choices):
            return self.choices[int(text) - 1]
        return next((c for c in self.choices if text in (c.label.lower(), c.value.lower())), None)


class TurnRecorder(Protocol):
    """What a channel writes in a turn's own transaction (`DialogEngine.handle_turn`), so its
    delivery's bookkeeping commits with the turn: one commit instead of three."""

    async def first(self, uow: DialogUnitOfWork) -> None:
        """At the start of every attempt of the turn: what it raises ends the turn with
        nothing written."""

    async def last(self, uow: DialogUnitOfWork, replies: Sequence[Reply]) -> None:
        """Just before the turn commits, with its replies (to keep until they are sent)."""
