"""The outbound port every chat channel implements, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol

from core.model import Channel
from dialogs.turn import Reply


class DeliveryError(Exception):
    """Base of what a channel raises when a message could not be delivered."""


class RetryLater(DeliveryError):
    """A transient failure (rate limit, 5xx, timeout): try again after `seconds`."""

    def __init__(self, message: str, seconds: float = 1.0) -> None:
        super().__init__(message)
        self.seconds = seconds


class Unreachable(DeliveryError):
    """The platform will not let us write to this chat (blocked, deactivated): use email."""


class PermanentFailure(DeliveryError):
    """The message can never be delivered as it is (bad request); do not retry."""


class ChatChannel(Protocol):
    """Sends replies into one platform's chats."""

    channel: Channel

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Deliver `reply`; return the provider's message id. Raises a DeliveryError."""
        ...
