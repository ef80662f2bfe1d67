"""The Telegram channel, with python-telegram-bot (the only module importing `telegram`).

Inbound: a webhook (`POST /telegram/webhook`, Telegram's `X-Telegram-Bot-Api-Secret-Token`
compared in constant time) in production, or a `getUpdates` loop for local development
(`TELEGRAM_MODE=polling`). After the secret, the body is read with a cap (413 above
`MAX_BODY`) and parsed by `core.jsonguard` (400 when too deep or not JSON), before anything
is recorded or logged. Each update is turned into a channel-neutral `UserSaid` and
handed to the dialog engine; its replies go back as HTML messages (escaped, split above
4096 characters, choices as inline keyboards).

Durability: every update is recorded in the inbox (key = update_id) before it is processed
(see bots/inbound.py). A redelivery is a no-op, except that stored replies which may not
have gone out are sent again. A failure answers 500, so Telegram delivers the update again
(polling retries it in place), until `telegram_max_attempts`; then, or at once when it can
never succeed (a malformed update, a domain error, a reply Telegram refuses), the update is
parked with its reason. Updates of one chat are handled one at a time and in order, other
chats concurrently (in-process locks; across replicas the engine's optimistic concurrency
decides).

Reply in the webhook answer: Telegram runs one Bot API method given in the body of the
webhook's answer (https://core.telegram.org/bots/api#making-requests-when-getting-updates),
which saves a round trip; the last reply of a turn goes that way when it fits one message.
Its result is not reported back, so a 403 there goes unnoticed until the next API call.

Group chats: support conversations carry personal data, so Careline serves customers in
private chats only. In a group it answers only commands addressed to it and mentions of
`@bot_username`, with a short note inviting the person to a private chat; other group
messages are recorded and ignored. Nothing from a group reaches the dialog engine.

Files: the largest photo size, documents, voice notes, audio and video are passed on by
`file_id` (never a download URL: those contain the bot token), up to `max_upload_bytes`
(20 MB, the Bot API's own download limit); above it the customer gets a clear message.
Before the turn, each file of a kind Careline keeps (core.files) is fetched (`getFile`, then
the file itself) into the file store, once per Telegram file however often the update is
delivered; when Telegram does not hand it over, the update is retried a few times and then
goes on with the file named but not kept.
Edited messages reach the engine as new turns flagged `edited` (the earlier text is kept
where it was stored). Stickers, locations, contacts, polls, ... get a polite answer.

Outbound: `AIORateLimiter` with about 1 message/s per private chat (bursts of 3), 30/s
overall and 20/min per group; 429 `retry_after` is honoured. A 403 (blocked by the user)
marks the channel identity unreachable, so notices fall back to e-mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from aiolimiter import AsyncLimiter
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, Application

from bots.channels import (
    ChatLocks,
    OutgoingFile,
    PermanentFailure,
    PlugBuild,
    PlugStart,
    RetryLater,
    TurnEngine,
    Unreachable,
)
from bots.inbound import Delivery, Inbox, Stage
from bots.metrics import Metrics
from bots.plugs import TELEGRAM_WEBHOOK_PATH
from core import jsonguard
from core.config import Settings
from core.db.database import Database
from core.db.pacing import SqlPacer
from core.db.reachability import mark_reachable
from core.errors import Conflict, DomainError
from core.files import FileRefused, describe, platform_file_id
from core.jsonguard import RefusedBody, read_capped
from core.model import Channel
from core.ports import FileStore, Pacer
from dialogs.turn import Attachment, Reply, UserSaid

log = logging.getLogger("careline.telegram")

SOURCE = "telegram"
MAX_MESSAGE = 4096  # Bot API: text of 1-4096 characters after entity parsing
MAX_CALLBACK_DATA = 64  # bytes
MAX_CAPTION = 1024  # characters of a photo's or document's caption
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # sendPhoto's limit; larger photos go as documents
PHOTO_TYPES = ("image/jpeg", "image/png")
LATE_RETRIES = 3  # new send slots a late-waking sender takes before it sends anyway
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# An update carries at most a 4096-character text or a 1024-character caption, their entities
# and the message it replies to; files come as file_id. Real updates stay far below 1 MiB.
MAX_BODY = 1024 * 1024
FILE_ATTEMPTS = 3  # deliveries of an update that wait for its files before going on without

TOO_LARGE = (
    "Sorry, that file is too large for me ({size}). I can take files up to {limit}. "
    "Could you send a smaller one, or describe the problem in words?"
)
UNSUPPORTED = (
    "Sorry, I can't read that kind of message. Please write to me in text; "
    "photos, documents and voice notes are fine too."
)
GROUP_NOTE = (
    "I help with support requests in a private chat, so your details stay private. "
    "Please write to me directly: https://t.me/{username}"
)


# -- outbound ------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_message(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Cut plain text into pieces of at most `limit`, at paragraph, line or word breaks."""
    chunks: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        units, end = 0, 0
        for ch in rest:
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > limit:
                break
            end += 1
        window = rest[:end]
        cut = end
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > end // 2:
                cut = at
                break
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest.strip() or not chunks:
        chunks.append(rest)
    return chunks


def keyboard_for(reply: Reply) -> InlineKeyboardMarkup | None:
    """Inline buttons for the reply's choices; None when a value cannot be callback data."""
    if not reply.choices:
        return None
    if any(not 1 <= len(c.value.encode()) <= MAX_CALLBACK_DATA for c in reply.choices):
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(c.label[:64], callback_data=c.value)] for c in reply.choices]
    )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    html: str
    keyboard: InlineKeyboardMarkup | None = None


def render(reply: Reply) -> list[OutgoingMessage]:
    """A reply as Telegram messages: escaped HTML pieces, the keyboard on the last one."""
    keyboard = keyboard_for(reply)
    text = reply.text if keyboard is not None or not reply.choices else reply.as_plain_text()
    if not text.strip():
        if keyboard is None:
            return []
        text = "Please choose:"
    pieces = [html.escape(p, quote=False) for p in split_message(text)]
    return [
        OutgoingMessage(piece, keyboard if i == len(pieces) - 1 else None)
        for i, piece in enumerate(pieces)
    ]


class CarelineRateLimiter(AIORateLimiter):
    """PTB's limiter (overall and per group) plus about 1 message/s per private chat.

    With a `pacer` (core.db.pacing, on PostgreSQL) the overall and per-chat limits hold for
    the whole cluster: every process of one bot reserves its slots in the same rows, so four
    relays together still send about 30/s. Without one, this process paces alone (SQLite:
    one process serves)."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        overall_per_second: float = 30,
        chat_per_second: float = 1,
        chat_burst: int = 3,
        group_per_minute: float = 20,
        max_retries: int = 3,
        pacer: Pacer | None = None,
        bot_key: str = "bot",
    ) -> None:
        self._pacer = pacer
        self._bot_key = bot_key
        self._overall_rate = overall_per_second
        super().__init__(
            overall_max_rate=0 if pacer is not None else overall_per_second,
            overall_time_period=1,
            group_max_rate=group_per_minute,
            group_time_period=60,
            max_retries=max_retries,
        )
        self._metrics = metrics
        self._chat_rate = chat_per_second
        self._chat_burst = chat_burst
        self._chat_limiters: dict[int, AsyncLimiter] = {}

    def _chat_limiter(self, chat_id: int) -> AsyncLimiter | None:
        if not self._chat_rate:
            return None
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            if len(self._chat_limiters) > 4096:  # forget idle chats (a full bucket)
                for key, old in list(self._chat_limiters.items()):
                    if old.has_capacity(old.max_rate):
                        del self._chat_limiters[key]
            limiter = AsyncLimiter(self._chat_burst, self._chat_burst / self._chat_rate)
            self._chat_limiters[chat_id] = limiter
        return limiter

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        metrics = self._metrics

        async def counted(*a: Any, **kw: Any) -> Any:
            try:
                return await callback(*a, **kw)
            except RetryAfter:
                metrics.rate_limited.labels(SOURCE).inc()
                raise

        chat_id = data.get("chat_id")
        private = False
        with contextlib.suppress(TypeError, ValueError):
            private = chat_id is not None and int(chat_id) > 0
        if self._pacer is not None:
            await self._paced(f"{self._bot_key}:{chat_id}" if private else None)
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )
        limiter = self._chat_limiter(int(chat_id)) if private and chat_id is not None else None
        if limiter is None:
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )
        async with limiter:
            return await super().process_request(
                counted, args, kwargs, endpoint, data, rate_limit_args
            )

    async def _paced(self, chat_key: str | None) -> None:
        """Wait for this chat's shared slot, then for the bot's (in that order, so a chat's
        wait never holds a slot of the bot's)."""
        assert self._pacer is not None
        if chat_key is not None and self._chat_rate:
            wait = await self._pacer.reserve(
                "telegram.chat", chat_key, self._chat_rate, self._chat_burst
            )
            if wait:
                await asyncio.sleep(wait)
        # A process that wakes up late (a busy event loop) would send in the next slot's
        # time, bunching with it: past half an interval late it takes a new slot instead.
        late = 0.5 / self._overall_rate if self._overall_rate else 0.0
        for _ in range(LATE_RETRIES):
            wait = await self._pacer.reserve("telegram.bot", self._bot_key, self._overall_rate)
            due = time.monotonic() + wait
            if wait:
                await asyncio.sleep(wait)
            if time.monotonic() - due <= late:
                return


def _seconds(exc: RetryAfter) -> float:
    # PTB 22 returns an int here (a timedelta in a later major version) and warns about it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


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

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Deliver `reply` (split when long); return the id of its last message."""
        last = ""
        for message in render(reply):
            last = await self._send_one(chat_id, message)
        return last

    async def _send_one(self, chat_id: str, message: OutgoingMessage) -> str:
        return await self._call(
            chat_id,
            self.bot.send_message(
                chat_id=chat_id,
                text=message.html,
                parse_mode="HTML",
                reply_markup=message.keyboard,
                link_preview_options=None,
            ),
        )

    async def send_file(self, chat_id: str, file: OutgoingFile) -> str:
        """The file itself: a photo shown in the chat (JPEG, PNG), anything else a document."""
        upload = InputFile(file.content, filename=file.name)
        caption = html.escape(file.caption[:MAX_CAPTION], quote=False) or None
        if file.mime_type in PHOTO_TYPES and len(file.content) <= MAX_PHOTO_BYTES:
            sent = self.bot.send_photo(chat_id, upload, caption=caption, parse_mode="HTML")
        else:
            sent = self.bot.send_document(chat_id, upload, caption=caption, parse_mode="HTML")
        return await self._call(chat_id, sent)

    async def _call(self, chat_id: str, call: Awaitable[Message]) -> str:
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
            raise RetryLater(f"telegram: {exc.message}", _seconds(exc)) from exc
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
        return str(sent.message_id)

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


# -- inbound -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """What one update asks of us."""

    chat_id: str | None = None  # where answers go, and the ordering key
    said: UserSaid | None = None  # a turn for the engine
    answer: tuple[Reply, ...] = ()  # answered directly, without the engine
    callback_query_id: str | None = None
    user_id: str | None = None
    reachable: bool | None = None  # the user blocked (False) or unblocked (True) the bot


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    if message.photo:
        best = max(message.photo, key=lambda p: (p.file_size or 0, p.width * p.height))
        found.append(Attachment("photo", best.file_id, None, "image/jpeg", best.file_size))
    if message.document:
        d = message.document
        found.append(Attachment("document", d.file_id, d.file_name, d.mime_type, d.file_size))
    if message.voice:
        v = message.voice
        found.append(Attachment("voice", v.file_id, None, v.mime_type, v.file_size))
    if message.audio:
        a = message.audio
        found.append(Attachment("audio", a.file_id, a.file_name, a.mime_type, a.file_size))
    if message.video:
        v2 = message.video
        found.append(Attachment("video", v2.file_id, v2.file_name, v2.mime_type, v2.file_size))
    if message.video_note:
        n = message.video_note
        found.append(Attachment("video", n.file_id, None, "video/mp4", n.file_size))
    return found


def _command_for_us(text: str, username: str) -> str | None:
    """`/start@our_bot args` -> `/start args`; None for a command addressed to another bot."""
    head, _, rest = text.partition(" ")
    command, _, addressee = head.partition("@")
    if addressee and addressee.lower() != username.lower():
        return None
    return f"{command} {rest}".rstrip()


def translate(update: Update, *, username: str, max_upload_bytes: int) -> Inbound:
    """Turn a Telegram update into what Careline does with it."""
    query = update.callback_query
    if query is not None:
        message = query.message
        chat = message.chat if message is not None else None
        if chat is not None and chat.type != "private":
            return Inbound(chat_id=str(chat.id), callback_query_id=query.id)
        label = query.data or ""
        if isinstance(message, Message) and message.reply_markup is not None:
            for row in message.reply_markup.inline_keyboard:
                label = next((b.text for b in row if b.callback_data == query.data), label)
        chat_id = str(chat.id if chat is not None else query.from_user.id)
        said = UserSaid(
            channel=Channel.TELEGRAM,
            user_id=str(query.from_user.id),
            chat_id=chat_id,
            text=label,
            message_id=f"cb:{query.id}",
            display_name=query.from_user.full_name,
            language=query.from_user.language_code or "en",
            choice=query.data,
        )
        return Inbound(chat_id=chat_id, said=said, callback_query_id=query.id)

    member = update.my_chat_member
    if member is not None:
        if member.chat.type != "private":
            return Inbound(chat_id=str(member.chat.id))
        status = member.new_chat_member.status
        return Inbound(
            chat_id=str(member.chat.id),
            user_id=str(member.from_user.id),
            reachable=status not in ("kicked", "left"),
        )

    message = update.message or update.edited_message
    if message is None or message.from_user is None:
        return Inbound()  # channel posts, polls, future kinds: nothing for support
    chat_id = str(message.chat.id)
    text = message.text or message.caption or ""
    if message.chat.type != "private":
        addressed = (
            text.startswith("/") and _command_for_us(text, username) is not None
        ) or f"@{username.lower()}" in text.lower()
        if addressed and not message.from_user.is_bot:
            return Inbound(chat_id=chat_id, answer=(Reply(GROUP_NOTE.format(username=username)),))
        return Inbound(chat_id=chat_id)
    if text.startswith("/"):
        text = _command_for_us(text, username) or text
    attachments = _attachments(message)
    for item in attachments:
        if item.size is not None and item.size > max_upload_bytes:
            note = TOO_LARGE.format(size=_size(item.size), limit=_size(max_upload_bytes))
            return Inbound(chat_id=chat_id, answer=(Reply(note),))
    edited = update.edited_message is not None
    if not text and not attachments:
        return Inbound(chat_id=chat_id, answer=() if edited else (Reply(UNSUPPORTED),))
    key = f"{chat_id}:{message.message_id}"
    if edited and message.edit_date is not None:
        key += f":edit:{int(message.edit_date.timestamp())}"
    user = message.from_user
    said = UserSaid(
        channel=Channel.TELEGRAM,
        user_id=str(user.id),
        chat_id=chat_id,
        text=text,
        message_id=key,
        display_name=user.full_name,
        language=user.language_code or "en",
        attachments=tuple(attachments),
        edited=edited,
    )
    return Inbound(chat_id=chat_id, said=said)


# -- the adapter ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """How to answer one update: the HTTP status and, maybe, a Bot API call in the body."""

    status: int = 200
    result: str = "ok"
    body: dict[str, Any] | None = None


def bot_key(settings: Settings) -> str:
    """The bot's id (the token's part before the colon): its limits' key, never a secret."""
    token = settings.telegram_bot_token
    return token.get_secret_value().split(":", 1)[0] if token is not None else "bot"


def build_application(
    settings: Settings, limiter: AIORateLimiter | None = None
) -> Application[Any, Any, Any, Any, Any, Any]:
    """PTB's application without an updater: we receive updates ourselves."""
    token = settings.telegram_bot_token
    if token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    base = settings.telegram_api_base_url
    builder = (
        Application.builder()
        .token(token.get_secret_value())
        .base_url(base)
        .base_file_url(base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base)
        .updater(None)
        .connection_pool_size(64)
        .pool_timeout(10)
    )
    if limiter is not None:
        builder = builder.rate_limiter(limiter)  # type: ignore[arg-type]
    return builder.build()


async def register_webhook(settings: Settings, url: str) -> dict[str, Any]:
    """`careline telegram set-webhook URL`: register it with the secret; return Telegram's view."""
    secret = settings.telegram_webhook_secret
    if secret is None:
        raise ValueError("TELEGRAM_WEBHOOK_SECRET is not set: Telegram would call us unsigned")
    async with build_application(settings) as application:
        await application.bot.set_webhook(
            url, secret_token=secret.get_secret_value(), allowed_updates=ALLOWED_UPDATES
        )
        info = await application.bot.get_webhook_info()
    return {
        "url": info.url,
        "pending_update_count": info.pending_update_count,
        "allowed_updates": list(info.allowed_updates or ()),
    }


async def unregister_webhook(settings: Settings) -> None:
    """Remove the webhook (e.g. before switching to polling)."""
    async with build_application(settings) as application:
        await application.bot.delete_webhook()


@dataclass
class TelegramBot:
    """The Telegram adapter of one process: PTB application, inbox, engine, channel."""

    settings: Settings
    db: Database
    engine: TurnEngine
    metrics: Metrics
    files: FileStore | None = None
    application: Application[Any, Any, Any, Any, Any, Any] = field(init=False)
    channel: TelegramChannel = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        limiter = CarelineRateLimiter(
            metrics=self.metrics,
            overall_per_second=s.telegram_overall_per_second,
            chat_per_second=s.telegram_chat_per_second,
            pacer=SqlPacer(self.db) if self.db.is_postgres else None,
            bot_key=bot_key(s),
        )
        self.application = build_application(s, limiter)
        self.bot: Bot = self.application.bot
        self.channel = TelegramChannel(self.bot, self.metrics, self.mark_unreachable)
        self.inbox = Inbox(self.db, SOURCE)
        self.locks = ChatLocks()
        secret = s.telegram_webhook_secret
        self.secret = secret.get_secret_value().encode() if secret else b""
        self.max_attempts: int = s.telegram_max_attempts
        self.reply_in_answer: bool = s.telegram_reply_in_webhook_answer
        self.username = ""
        self._stopping = asyncio.Event()
        self._polling: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (getMe); in polling mode start the getUpdates loop."""
        await self.application.initialize()
        self.username = self.bot.username
        if self.settings.telegram_mode == "polling":
            self._polling = asyncio.create_task(self.poll(), name="telegram-polling")
        elif self.settings.public_url:
            await self.set_webhook(self.settings.public_url.rstrip("/") + TELEGRAM_WEBHOOK_PATH)

    async def stop(self) -> None:
        self._stopping.set()
        if self._polling is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._polling, 30)
        await self.application.shutdown()

    async def set_webhook(self, url: str) -> None:
        """Register the webhook with the secret token (Telegram then sends it with each call)."""
        await self.bot.set_webhook(
            url,
            secret_token=self.secret.decode() or None,
            allowed_updates=ALLOWED_UPDATES,
        )

    # -- webhook -------------------------------------------------------------------------
    async def webhook(self, request: Request) -> Response:
        """`POST /telegram/webhook`: check the secret, then handle the update."""
        started = time.perf_counter()
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not self.secret or not hmac.compare_digest(given, self.secret):
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            return Response(status_code=403 if given else 401)
        try:
            body = await read_capped(
                request.stream(), declared=request.headers.get("content-length"), limit=MAX_BODY
            )
            data = jsonguard.loads(body)
        except RefusedBody as refused:
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            log.warning("refused a webhook call: %s", refused)
            return Response(str(refused), refused.status, media_type="text/plain")
        try:
            update_id = int(data["update_id"])
        except (ValueError, KeyError, TypeError):
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            return Response("not an update: no update_id", 400, media_type="text/plain")
        outcome = await self.handle(data, update_id, webhook=True)
        self.metrics.webhooks.labels(SOURCE, outcome.result).inc()
        self.metrics.webhook_seconds.labels(SOURCE).observe(time.perf_counter() - started)
        if outcome.body is not None:
            content = json.dumps(outcome.body, ensure_ascii=False, separators=(",", ":"))
            return Response(content, outcome.status, media_type="application/json")
        return Response(status_code=outcome.status)

    # -- polling -------------------------------------------------------------------------
    async def poll(self) -> None:
        """getUpdates loop for local development: each update is retried in place."""
        await self.bot.delete_webhook()
        offset: int | None = None
        backoff = 1.0
        while not self._stopping.is_set():
            fetch = asyncio.ensure_future(
                self.bot.get_updates(offset=offset, timeout=10, allowed_updates=ALLOWED_UPDATES)
            )
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not fetch.done():
                fetch.cancel()
                break
            try:
                updates = fetch.result()
            except TelegramError as exc:
                log.warning("getUpdates failed: %s", exc.message)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30)
                continue
            backoff = 1.0
            # Per chat in order (a failed update is retried before the chat's next one).
            chats: dict[object, list[Update]] = {}
            for u in updates:
                chat = u.effective_chat
                chats.setdefault(chat.id if chat else u.update_id, []).append(u)
            await asyncio.gather(*(self._handle_polled_in_order(us) for us in chats.values()))
            if updates:
                offset = updates[-1].update_id + 1

    async def _handle_polled_in_order(self, updates: list[Update]) -> None:
        for update in updates:
            await self._handle_polled(update)

    async def _handle_polled(self, update: Update) -> None:
        data = update.to_dict()
        for attempt in range(self.max_attempts + 1):
            outcome = await self.handle(data, update.update_id, webhook=False)
            self.metrics.webhooks.labels(SOURCE, outcome.result).inc()
            if outcome.status < 500 or self._stopping.is_set():
                return
            await asyncio.sleep(min(0.2 * 2**attempt, 10))

    # -- one update ------------------------------------------------------------------------
    async def handle(self, data: dict[str, Any], update_id: int, *, webhook: bool) -> Outcome:
        """Process one update exactly once (see the module docstring); never raises."""
        key = str(update_id)
        try:
            update = Update.de_json(data, self.bot)
            inbound = translate(
                update,
                username=self.username or "bot",
                max_upload_bytes=self.settings.max_upload_bytes,
            )
        except Exception as exc:
            log.warning("update %s is malformed: %s", key, type(exc).__name__)
            return await self._park_now(key, f"malformed update: {type(exc).__name__}", data)
        async with self.locks.hold(inbound.chat_id or key):
            try:
                return await self._process(key, data, inbound, webhook)
            except Exception as exc:  # the database is down, a bug: Telegram retries
                log.exception("update %s failed", key)
                with contextlib.suppress(Exception):
                    await self.inbox.failed(key, f"{type(exc).__name__}: {exc}")
                return Outcome(500, "retry")

    async def _park_now(self, key: str, reason: str, data: dict[str, Any]) -> Outcome:
        delivery = await self.inbox.begin(key)
        if delivery.stage is not Stage.FINISHED:
            await self.inbox.park(key, reason, data)
        return Outcome(200, "parked")

    async def _process(
        self, key: str, data: dict[str, Any], inbound: Inbound, webhook: bool
    ) -> Outcome:
        delivery = await self.inbox.begin(key)
        if delivery.stage is Stage.FINISHED:
            return Outcome(200, "duplicate")
        if delivery.attempts > self.max_attempts:
            await self.inbox.park(key, f"gave up after {delivery.attempts - 1} attempts", data)
            log.error("update %s parked after %d attempts", key, delivery.attempts - 1)
            return Outcome(200, "parked")
        if delivery.stage is Stage.ANSWERED:
            return await self._deliver(key, inbound, delivery, webhook, "resent")

        if inbound.callback_query_id is not None:
            await self._answer_callback(inbound.callback_query_id)
        if inbound.reachable is not None and inbound.user_id is not None:
            await self.set_reachable(inbound.user_id, inbound.reachable)
        replies: Sequence[Reply] = inbound.answer
        if inbound.said is not None:
            try:
                said = await self._keep_files(inbound.said, delivery.attempts)
            except NetworkError as exc:  # Telegram did not hand a file over: it redelivers
                await self.inbox.failed(key, f"file not fetched: {type(exc).__name__}")
                return Outcome(500, "retry")
            started = time.perf_counter()
            try:
                replies = await self.engine.handle_turn(said)
            except Conflict as exc:  # another replica changed the conversation: retry
                self.metrics.turns.labels(SOURCE, "failed").inc()
                await self.inbox.failed(key, f"conflict: {exc}")
                return Outcome(500, "retry")
            except DomainError as exc:  # the same input would fail the same way again
                self.metrics.turns.labels(SOURCE, "failed").inc()
                await self.inbox.park(key, f"{type(exc).__name__}: {exc}", data)
                return Outcome(200, "parked")
            self.metrics.turns.labels(SOURCE, "ok").inc()
            self.metrics.turn_seconds.labels(SOURCE).observe(time.perf_counter() - started)
        if not replies or inbound.chat_id is None:
            await self.inbox.done(key)
            return Outcome(200, "ok" if inbound.said else "ignored")
        if webhook and self.reply_in_answer and inbound.said is not None and len(replies) == 1:
            answer = self.channel.webhook_answer(inbound.chat_id, replies[0])
            if answer is not None:
                # No `answered` write on this hot path: if the answer never reaches Telegram
                # it redelivers, the turn runs again, and the engine gives the answer it
                # remembers for that message id without a second effect.
                self.metrics.sent.labels(SOURCE, "webhook_answer").inc()
                return Outcome(200, "ok", answer)
        await self.inbox.answered(key, replies)
        answered = Delivery(Stage.ANSWERED, delivery.attempts, tuple(replies), 0)
        return await self._deliver(key, inbound, answered, webhook, "ok")

    async def _deliver(
        self, key: str, inbound: Inbound, delivery: Delivery, webhook: bool, result: str
    ) -> Outcome:
        chat_id = inbound.chat_id
        replies = delivery.replies
        if chat_id is None or delivery.sent >= len(replies):
            await self.inbox.done(key)
            return Outcome(200, result)
        last_in_answer: dict[str, Any] | None = None
        if webhook and self.reply_in_answer:
            last_in_answer = self.channel.webhook_answer(chat_id, replies[-1])
        through_api = replies[delivery.sent : -1] if last_in_answer else replies[delivery.sent :]
        sent = delivery.sent
        for reply in through_api:
            try:
                await self.channel.send(chat_id, reply)
            except Unreachable as exc:
                await self.inbox.done(key, str(exc))
                return Outcome(200, "blocked")
            except PermanentFailure as exc:
                await self.inbox.park(key, str(exc))
                return Outcome(200, "parked")
            except RetryLater as exc:
                await self.inbox.progress(key, replies, sent, str(exc))
                return Outcome(500, "retry")
            sent += 1
        if last_in_answer is not None:
            # The row stays `answered`: if this answer never reaches Telegram, it redelivers
            # the update and the reply is given again.
            self.metrics.sent.labels(SOURCE, "webhook_answer").inc()
            return Outcome(200, result, last_in_answer)
        await self.inbox.done(key)
        return Outcome(200, result)

    async def _keep_files(self, said: UserSaid, attempts: int) -> UserSaid:
        """The turn with its files copied into the file store (see the module docstring)."""
        if self.files is None or not any(a.file_id for a in said.attachments):
            return said
        kept: list[Attachment] = []
        for attachment in said.attachments:
            try:
                kept.append(await self._keep_file(attachment, said.user_id))
            except BadRequest:  # a subclass of NetworkError that no retry mends (too big)
                kept.append(attachment)
            except NetworkError:
                if attempts < FILE_ATTEMPTS:
                    raise
                log.warning("a file of a Telegram message was not fetched; going on without it")
                kept.append(attachment)
        return replace(said, attachments=tuple(kept))

    async def _keep_file(self, attachment: Attachment, user_id: str) -> Attachment:
        assert self.files is not None and attachment.file_id is not None
        stored_id = platform_file_id(SOURCE, attachment.file_id)
        found = await self.files.info(stored_id)
        if found is None:
            file = await self.bot.get_file(attachment.file_id)
            content = bytes(await file.download_as_bytearray())
            try:
                described = describe(
                    content,
                    name=attachment.name,
                    declared=attachment.mime_type,
                    limit=self.settings.max_upload_bytes,
                    file_id=stored_id,
                    owner=f"{SOURCE}:{user_id}",
                )
            except FileRefused:
                return attachment  # a kind we do not keep: named, not stored
            found = await self.files.put(described, content)
        return replace(
            attachment,
            name=found.name,
            mime_type=found.mime_type,
            size=found.size,
            stored_id=found.id,
        )

    async def _answer_callback(self, query_id: str) -> None:
        # Stops the button's spinner; a stale query (older than ~15 minutes) is not an error.
        try:
            await self.bot.answer_callback_query(query_id)
        except TelegramError as exc:
            log.info("answerCallbackQuery failed: %s", exc.message)

    # -- identities ------------------------------------------------------------------------
    async def mark_unreachable(self, chat_id: str) -> None:
        """Telegram answered 403 for this chat: notices fall back to e-mail."""
        await mark_reachable(self.db, Channel.TELEGRAM, False, chat_id=chat_id)
        log.info("telegram identity marked unreachable")

    async def set_reachable(self, user_id: str, reachable: bool) -> None:
        await mark_reachable(self.db, Channel.TELEGRAM, reachable, external_id=user_id)
        log.info("telegram identity marked %s", "reachable" if reachable else "unreachable")


# -- the plug ------------------------------------------------------------------------------


class TelegramPlug:
    """Telegram as a channel plug (bots.channels.ChannelPlug): the webhook route, the bot
    built at start with the engine, reconnecting in the background while Telegram is down."""

    def __init__(self, build: PlugBuild) -> None:
        self.build = build
        self.bot: TelegramBot | None = None  # built at start, its channel works at once
        self.connected = False  # the webhook answers 503 until then: Telegram retries

    @property
    def channel(self) -> TelegramChannel:
        assert self.bot is not None, "the plug is started before its channel is used"
        return self.bot.channel

    def routes(self) -> list[Any]:
        if self.build.settings.telegram_mode != "webhook":
            return []
        router = APIRouter(include_in_schema=False)
        # A plain route: the body is read raw and checked by the adapter, no validation layer.
        router.add_route(TELEGRAM_WEBHOOK_PATH, self.webhook, methods=["POST"])
        return [router]

    async def webhook(self, request: Request) -> Response:
        if self.bot is None or not self.connected:  # Telegram was unreachable at start
            return Response(status_code=503)
        return await self.bot.webhook(request)

    def register(self, handlers: Any) -> None:
        """Telegram's notices are the customer notices' (bots.notices): nothing more."""

    async def start(self, start: PlugStart) -> list[asyncio.Task[None]]:
        b = self.build
        engine = cast(TurnEngine, start.engine)  # None in the relay role, which only sends
        self.bot = TelegramBot(b.settings, b.db, engine, b.metrics, files=b.files)
        try:
            if start.receives:
                await self.bot.start()
            else:  # the relay role only sends: no webhook, no polling
                await self.bot.application.initialize()
        except Exception as exc:
            # Telegram down must not take the admin API and Slack down with it: keep trying.
            log.error(
                "Telegram is unreachable (%s); retrying in the background", type(exc).__name__
            )
            retry = self._reconnect(start.stopping)
            return [asyncio.create_task(retry, name="telegram-connect")]
        self.connected = True
        return []

    async def _reconnect(self, stopping: asyncio.Event) -> None:
        assert self.bot is not None
        delay = 2.0
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
                return
            try:
                await self.bot.start()
            except Exception as exc:
                log.warning("Telegram still unreachable (%s)", type(exc).__name__)
                delay = min(delay * 2, 60)
                continue
            self.connected = True
            log.info("connected to Telegram")
            return

    async def stop(self, grace: float) -> None:
        if self.bot is not None:
            await self.bot.stop()
