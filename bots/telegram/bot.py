"""The Telegram adapter of one process: the webhook and polling, the inbox, the engine's
turns and their replies (see the package's notes on durability)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import Response
from telegram import (
    Bot,
    Update,
)
from telegram.error import (
    BadRequest,
    NetworkError,
    TelegramError,
)
from telegram.ext import Application

from bots.channels import (
    ChatLocks,
    PermanentFailure,
    RecordingTurnEngine,
    RetryLater,
    TurnEngine,
    Unreachable,
)
from bots.metrics import Metrics
from bots.plugs import TELEGRAM_WEBHOOK_PATH
from bots.telegram.application import ALLOWED_UPDATES, build_application
from bots.telegram.channel import TelegramChannel
from bots.telegram.limits import SOURCE, CarelineRateLimiter, bot_key
from bots.telegram.updates import Inbound, translate
from core import jsonguard
from core.config import Settings
from core.db.database import Database
from core.db.inbox import SqlInbox
from core.db.pacing import SqlPacer
from core.db.reachability import SqlReachability
from core.errors import Conflict, DomainError
from core.files import FileRefused, describe, platform_file_id
from core.jsonguard import RefusedBody, read_capped
from core.model import Channel
from core.ports import DialogUnitOfWork, FileStore, Inbox, InboxEntry, Reachability, Stage
from dialogs.turn import Attachment, Reply, UserSaid

log = logging.getLogger("careline.telegram")

SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 (a header name)
MAX_BODY = 1024 * 1024
FILE_ATTEMPTS = 3  # deliveries of an update that wait for its files before going on without


@dataclass(frozen=True, slots=True)
class Outcome:
    """How to answer one update: the HTTP status and, maybe, a Bot API call in the body."""

    status: int = 200
    result: str = "ok"
    body: dict[str, Any] | None = None


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
        self.inbox: Inbox = SqlInbox(self.db, SOURCE)
        self.reachability: Reachability = SqlReachability(self.db)
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
        if self._records_in_turn(inbound):
            return await self._process_in_turn(key, data, inbound, webhook)
        return await self._resume(key, data, inbound, webhook, await self.inbox.begin(key))

    def _records_in_turn(self, inbound: Inbound) -> bool:
        """A plain message for an engine that can record it in its turn: one commit for the
        inbox record and the turn (files, buttons and blocks take the general way)."""
        said = inbound.said
        return (
            getattr(self.engine, "records_in_turn", False)
            and said is not None
            and not said.attachments
            and inbound.callback_query_id is None
            and inbound.reachable is None
        )

    async def _process_in_turn(
        self, key: str, data: dict[str, Any], inbound: Inbound, webhook: bool
    ) -> Outcome:
        """Record the update in the turn's own transaction, at its end. Anything but a first
        or retried delivery (a duplicate, stored replies to resend, too many attempts) rolls
        the turn back and goes the general way with what the record says."""
        assert inbound.said is not None
        recorder = _InTurn(self, key, inbound, webhook)
        engine = cast(RecordingTurnEngine, self.engine)
        started = time.perf_counter()
        try:
            replies = await engine.handle_turn(inbound.said, recorder=recorder)
        except _Recorded as recorded:
            found = recorded.delivery or await self.inbox.begin(key)
            return await self._resume(key, data, inbound, webhook, found)
        except Exception as exc:
            # The turn's transaction took its record with it: count this attempt on its own,
            # and give up after the last one allowed (the record is written at the turn's
            # end, so no later delivery could learn the count before running the turn).
            delivery: InboxEntry | None = None
            with contextlib.suppress(Exception):
                delivery = await self.inbox.begin(key)
            if delivery is not None and delivery.stage is Stage.FINISHED:
                return Outcome(200, "duplicate")  # parked or done before: nothing to retry
            outcome = await self._turn_failed(key, data, exc)
            if outcome is not None:
                return outcome
            if delivery is None or delivery.attempts < self.max_attempts:
                raise
            log.exception("update %s parked after %d attempts", key, delivery.attempts)
            await self.inbox.park(key, f"gave up after {delivery.attempts} attempts", data)
            return Outcome(200, "parked")
        self._turn_done(started)
        return await self._answer(key, inbound, replies, webhook, recorder)

    async def _resume(
        self, key: str, data: dict[str, Any], inbound: Inbound, webhook: bool, delivery: InboxEntry
    ) -> Outcome:
        """The general way, from the inbox record of this delivery."""
        if delivery.stage is Stage.FINISHED:
            return Outcome(200, "duplicate")
        if delivery.attempts > self.max_attempts:
            await self.inbox.park(key, f"gave up after {delivery.attempts - 1} attempts", data)
            log.error("update %s parked after %d attempts", key, delivery.attempts - 1)
            return Outcome(200, "parked")
        if delivery.stage is Stage.ANSWERED:
            stored = [Reply.from_json(reply) for reply in delivery.replies]
            return await self._deliver(key, inbound, stored, delivery.sent, webhook, "resent")

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
            except (Conflict, DomainError) as exc:
                outcome = await self._turn_failed(key, data, exc)
                assert outcome is not None
                return outcome
            self._turn_done(started)
        return await self._answer(key, inbound, replies, webhook)

    async def _turn_failed(
        self, key: str, data: dict[str, Any], exc: BaseException
    ) -> Outcome | None:
        """A turn that raised: retried (a conflict), parked (a domain error), or None for
        anything else (the caller lets it go up: Telegram retries)."""
        if isinstance(exc, Conflict):  # another replica changed the conversation: retry
            self.metrics.turns.labels(SOURCE, "failed").inc()
            await self.inbox.failed(key, f"conflict: {exc}")
            return Outcome(500, "retry")
        if isinstance(exc, DomainError):  # the same input would fail the same way again
            self.metrics.turns.labels(SOURCE, "failed").inc()
            await self.inbox.park(key, f"{type(exc).__name__}: {exc}", data)
            return Outcome(200, "parked")
        return None

    def _turn_done(self, started: float) -> None:
        self.metrics.turns.labels(SOURCE, "ok").inc()
        self.metrics.turn_seconds.labels(SOURCE).observe(time.perf_counter() - started)

    def _in_answer(
        self, inbound: Inbound, replies: Sequence[Reply], webhook: bool
    ) -> dict[str, Any] | None:
        """The turn's one reply as the webhook's answer, when it fits there. No `answered`
        write on this hot path: if the answer never reaches Telegram it redelivers, the turn
        runs again, and the engine gives the answer it remembers for that message id
        without a second effect."""
        if not (webhook and self.reply_in_answer and inbound.said is not None):
            return None
        if len(replies) != 1 or inbound.chat_id is None:
            return None
        return self.channel.webhook_answer(inbound.chat_id, replies[0])

    async def _answer(
        self,
        key: str,
        inbound: Inbound,
        replies: Sequence[Reply],
        webhook: bool,
        recorded: _InTurn | None = None,
    ) -> Outcome:
        """The turn's replies: in the webhook's answer when one fits, else through the Bot
        API, kept in the inbox row until they are sent (`recorded`: the turn's own
        transaction stored them, and knows the answer)."""
        if not replies or inbound.chat_id is None:
            await self.inbox.done(key)
            return Outcome(200, "ok" if inbound.said else "ignored")
        answer = recorded.answer if recorded else self._in_answer(inbound, replies, webhook)
        if answer is not None:
            self.metrics.sent.labels(SOURCE, "webhook_answer").inc()
            return Outcome(200, "ok", answer)
        if not (recorded and recorded.kept):
            await self.inbox.answered(key, [reply.to_json() for reply in replies])
        return await self._deliver(key, inbound, replies, 0, webhook, "ok")

    async def _deliver(
        self,
        key: str,
        inbound: Inbound,
        replies: Sequence[Reply],
        sent: int,
        webhook: bool,
        result: str,
    ) -> Outcome:
        """Send the turn's replies from the `sent`th on (the last in the webhook's answer
        when it may go there)."""
        chat_id = inbound.chat_id
        if chat_id is None or sent >= len(replies):
            await self.inbox.done(key)
            return Outcome(200, result)
        last_in_answer: dict[str, Any] | None = None
        if webhook and self.reply_in_answer:
            last_in_answer = self.channel.webhook_answer(chat_id, replies[-1])
        through_api = replies[sent:-1] if last_in_answer else replies[sent:]
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
                stored = [reply.to_json() for reply in replies]
                await self.inbox.progress(key, stored, sent, str(exc))
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
        await self.reachability.mark(Channel.TELEGRAM, False, chat_id=chat_id)
        log.info("telegram identity marked unreachable")

    async def set_reachable(self, user_id: str, reachable: bool) -> None:
        await self.reachability.mark(Channel.TELEGRAM, reachable, external_id=user_id)
        log.info("telegram identity marked %s", "reachable" if reachable else "unreachable")


class _InTurn:
    """The update's inbox record in its turn's transaction (dialogs.turn.TurnRecorder), and
    the turn's replies when they will be sent through the Bot API: the record, the turn and
    the replies to send commit together, written in one statement at the turn's end. If the
    record says this is not a delivery to answer (a duplicate, stored replies to resend,
    too many attempts), the turn rolls back and the update goes the general way. A duplicate
    thus runs its turn before it is known (the engine answers a message id it has seen
    without a second effect): one statement fewer for every other update."""

    def __init__(self, bot: TelegramBot, key: str, inbound: Inbound, webhook: bool) -> None:
        self.bot = bot
        self.key = key
        self.inbound = inbound
        self.webhook = webhook
        self.kept = False  # the replies are stored in the inbox row, to send
        self.answer: dict[str, Any] | None = None  # the one reply in the webhook's answer

    async def first(self, uow: DialogUnitOfWork) -> None:
        self.kept, self.answer = False, None  # every attempt of the turn starts afresh

    async def last(self, uow: DialogUnitOfWork, replies: Sequence[Reply]) -> None:
        """Record the delivery, keeping the replies unless there are none or the one reply
        rides in the answer."""
        answer = self.bot._in_answer(self.inbound, replies, self.webhook)
        keep = bool(replies) and self.inbound.chat_id is not None and answer is None
        stored = [reply.to_json() for reply in replies] if keep else None
        delivery = await uow.inbox.record_turn(self.bot.inbox.source, self.key, stored)
        if delivery is None or delivery.attempts > self.bot.max_attempts:
            raise _Recorded(delivery)
        self.kept, self.answer = keep, answer


class _Recorded(Exception):
    """The inbox record says this delivery is not a turn to run (see `_process_in_turn`);
    without a `delivery`, the general way reads it."""

    def __init__(self, delivery: InboxEntry | None) -> None:
        super().__init__(delivery.stage.value if delivery else "answered or finished")
        self.delivery = delivery
