"""The outbound Telegram channel (`ChatChannel`): replies and files to a customer's chat."""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import (
    Bot,
    InputFile,
    Message,
)
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBUserWarning

from bots.channels import (
    OutgoingFile,
    PermanentFailure,
    RetryLater,
    Unreachable,
)
from bots.metrics import Metrics
from bots.telegram.limits import SOURCE, retry_seconds
from bots.telegram.render import OutgoingMessage, render
from core.model import Channel
from dialogs.turn import Reply

log = logging.getLogger("careline.telegram")

MAX_CAPTION = 1024  # characters of a photo's or document's caption
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # sendPhoto's limit; larger photos go as documents
PHOTO_TYPES = ("image/jpeg", "image/png")


class TelegramChannel:
    """`ChatChannel` for Telegram: what the relay and the webhook use to send replies."""

    channel = Channel.TELEGRAM

    def __init__(
        self,
        bot: Bot,
        metrics: Metrics,
        on_unreachable: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.bot = bot
        self.metrics = metrics
        self.on_unreachable = on_unreachable
        # A text goes out through `Bot.do_api_request`, which hands back Telegram's answer
        # as it came: `send_message` would build a `Message` of it (a tenth of a turn's CPU)
        # only for its id. PTB suggests send_message for a method it knows: not here.
        warnings.filterwarnings(
            "ignore", message=r"Please use 'Bot\.sendMessage'", category=PTBUserWarning
        )

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Deliver `reply` (split when long); return the id of its last message."""
        last = ""
        for message in render(reply):
            last = await self._send_one(chat_id, message)
        return last

    async def _send_one(self, chat_id: str, message: OutgoingMessage) -> str:
        request: dict[str, Any] = {"chat_id": chat_id, "text": message.html, "parse_mode": "HTML"}
        if message.keyboard is not None:
            request["reply_markup"] = message.keyboard
        return await self._call(chat_id, self.bot.do_api_request("sendMessage", request))

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        """The file itself: a photo shown in the chat (JPEG, PNG), anything else a document."""
        upload = InputFile(file.content, filename=file.name)
        caption = html.escape(file.caption[:MAX_CAPTION], quote=False) or None
        if file.mime_type in PHOTO_TYPES and len(file.content) <= MAX_PHOTO_BYTES:
            sent = self.bot.send_photo(chat_id, upload, caption=caption, parse_mode="HTML")
        else:
            sent = self.bot.send_document(chat_id, upload, caption=caption, parse_mode="HTML")
        return await self._call(chat_id, sent)

    async def _call(self, chat_id: str, call: Awaitable[Message | dict[str, Any]]) -> str:
        """One Bot API send, its errors as the relay's (bots.channels)."""
        errors = self.metrics.platform_errors
        try:
            sent = await call
        except Forbidden as exc:  # blocked by the user, deactivated, kicked from the group
            errors.labels(SOURCE, "blocked").inc()
            if self.on_unreachable is not None:
                await self.on_unreachable(chat_id)
            raise Unreachable(f"telegram: {exc.message}") from exc
        except RetryAfter as exc:
            errors.labels(SOURCE, "rate_limited").inc()
            raise RetryLater(f"telegram: {exc.message}", retry_seconds(exc)) from exc
        except BadRequest as exc:  # a subclass of NetworkError: check first
            errors.labels(SOURCE, "bad_request").inc()
            if "chat not found" in exc.message.lower():
                raise Unreachable(f"telegram: {exc.message}") from exc
            raise PermanentFailure(f"telegram: {exc.message}") from exc
        except NetworkError as exc:
            errors.labels(SOURCE, "network").inc()
            raise RetryLater(f"telegram: {exc.message}", 1.0) from exc
        except TelegramError as exc:
            errors.labels(SOURCE, "server").inc()
            raise RetryLater(f"telegram: {exc.message}", 1.0) from exc
        self.metrics.sent.labels(SOURCE, "api").inc()
        return str(sent["message_id"] if isinstance(sent, dict) else sent.message_id)

    def webhook_answer(self, chat_id: str, reply: Reply) -> dict[str, Any] | None:
        """The reply as a Bot API call for the webhook's answer, when it is one message."""
        messages = render(reply)
        if len(messages) != 1:
            return None
        body: dict[str, Any] = {
            "method": "sendMessage",
            "chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id,
            "text": messages[0].html,
            "parse_mode": "HTML",
        }
        if messages[0].keyboard is not None:
            body["reply_markup"] = messages[0].keyboard.to_dict()
        return body
