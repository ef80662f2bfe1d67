"""Texts from customers and Twilio's delivery reports: `POST /twilio/sms`, `/twilio/status`.

Every call must carry Twilio's signature (`X-Twilio-Signature`, an HMAC of the URL and the
form keyed with the auth token, checked by the SDK's `RequestValidator`): without it, or
wrong, 403 and nothing is read further.

A text is recorded in the inbox under its message SID, with its form, in one transaction
before anything else, and Twilio is answered at once (an empty TwiML document: the replies
go through the REST API, paced at the number's rate, which may take longer than Twilio
waits). The turn then runs in this process, one text at a time per phone number, in the
order they arrived; its replies are kept in the row and counted as they go out, so an attempt
after a crash sends only what had not gone. A redelivery (Twilio's retry, a copy on another
replica) finds the row and does nothing; a row left unfinished (kill -9, the database down)
is taken up again by `replay_forever` on any replica once its claim has run out.

Keywords, as carriers require: STOP (and STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT) opts the
number out: nothing more is texted to it and the customer's notices go by email (the number
is unreachable, as a blocked Telegram chat is); START opts it in again (Twilio itself
confirms both). HELP answers with the bot's help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator

from bots.channels import ChatLocks, PermanentFailure, RetryLater, TurnEngine, Unreachable
from bots.metrics import Metrics
from bots.sms.api import UNREACHABLE_DELIVERY_CODES
from bots.sms.channel import SmsChannel
from core import events
from core.config import Settings
from core.db import outbox
from core.db.database import Database
from core.db.reachability import SqlReachability
from core.db.sms import SmsMenus
from core.errors import Conflict, DomainError
from core.files import FileRefused, StoredFile, describe, platform_file_id
from core.jsonguard import RefusedBody, read_capped
from core.model import Channel
from core.ports import FileStore, Reachability
from dialogs.policy import e164
from dialogs.turn import Attachment, Choice, Reply, UserSaid

log = logging.getLogger("careline.sms")

SOURCE = "twilio"
SMS_PATH = "/twilio/sms"
STATUS_PATH = "/twilio/status"
SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_BODY = 64 * 1024  # a text's form is a few hundred bytes; MMS adds media URLs
MAX_ATTEMPTS = 5
RETRY_SECONDS = 2.0  # a text whose attempt stopped (Twilio busy, a file not handed over)
MAX_MEDIA = 10  # Twilio's own limit of media per MMS
MEDIA_ATTEMPTS = 3
CLAIM = timedelta(seconds=60)  # how long one attempt may take before another may run it
REPLAY_EVERY = 10.0
REPLAY_BATCH = 50
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

#: Reports that mean the message or call never reached the customer.
FAILED = {"sms": ("undelivered", "failed"), "call": ("failed", "busy", "no-answer")}
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def keyword(text: str) -> str | None:
    """STOP, START or HELP when the whole text is one of their words, else None."""
    word = text.strip().strip(".!").upper()
    if word in STOP_WORDS:
        return "STOP"
    if word in START_WORDS:
        return "START"
    if word in HELP_WORDS:
        return "HELP"
    return None


class _Later(Exception):
    """This attempt stops here; a later one resumes (a conflict, Twilio busy)."""


def twiml(status: int = 200) -> Response:
    return Response(EMPTY_TWIML, status, media_type="text/xml")


@dataclass
class SmsInbound:
    db: Database
    settings: Settings
    channel: SmsChannel
    metrics: Metrics
    engine: TurnEngine | None = None
    files: FileStore | None = None  # photos and files sent by MMS are kept there
    locks: ChatLocks = field(default_factory=ChatLocks)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        token = self.settings.twilio_auth_token
        assert token is not None
        self.validator = RequestValidator(token.get_secret_value())
        self.menus: SmsMenus = self.channel.menus
        self.reachability: Reachability = SqlReachability(self.db)

    # -- HTTP ------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route(SMS_PATH, self.receive, methods=["POST"])
        router.add_api_route(STATUS_PATH, self.report, methods=["POST"])
        return router

    async def signed_form(self, request: Request) -> dict[str, str] | Response:
        """The form of a call Twilio signed, or the answer refusing it."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            return Response("missing X-Twilio-Signature", 403, media_type="text/plain")
        try:
            raw = await read_capped(
                request.stream(), declared=request.headers.get("content-length"), limit=MAX_BODY
            )
        except RefusedBody as refused:
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            return Response(str(refused), refused.status, media_type="text/plain")
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if not self.validator.validate(self.signed_url(request), form, signature):
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            log.warning(
                "refused a Twilio call to %s: the signature does not match", request.url.path
            )
            return Response("bad X-Twilio-Signature", 403, media_type="text/plain")
        return form

    def signed_url(self, request: Request) -> str:
        """The URL Twilio called (and signed): the public URL's, behind a proxy."""
        public = self.settings.public_url
        if not public:
            return str(request.url)
        query = f"?{request.url.query}" if request.url.query else ""
        return public.rstrip("/") + request.url.path + query

    async def receive(self, request: Request) -> Response:
        form = await self.signed_form(request)
        if isinstance(form, Response):
            return form
        key = form.get("MessageSid") or form.get("SmsSid")
        if not key or not form.get("From"):
            self.metrics.webhooks.labels(SOURCE, "rejected").inc()
            return Response("not a message: no MessageSid or From", 400, media_type="text/plain")
        try:
            attempt = await self._record(key, {"form": form})
        except Exception as error:  # the database is down: Twilio may retry (#rc=...)
            log.error("could not record text %s: %s", key, type(error).__name__)
            return twiml(503)
        if attempt is None:
            self.metrics.webhooks.labels(SOURCE, "duplicate").inc()
            return twiml()
        self.metrics.webhooks.labels(SOURCE, "ok").inc()
        self._spawn(key, {"form": form}, attempt)
        return twiml()

    async def report(self, request: Request) -> Response:
        """A delivery report: a text that never arrived is told by email instead (like a
        blocked Telegram chat), and a number that cannot take texts is marked unreachable."""
        form = await self.signed_form(request)
        if isinstance(form, Response):
            return form
        kind = "call" if request.query_params.get("kind") == "call" else "sms"
        sid = form.get("MessageSid") or form.get("CallSid")
        status = form.get("MessageStatus") or form.get("CallStatus") or ""
        if not sid or not status:
            return Response("not a status report", 400, media_type="text/plain")
        if status in FAILED.get(kind, ()):
            code = int(form["ErrorCode"]) if form.get("ErrorCode", "").isdigit() else None
            try:
                await self.undelivered(kind, sid, status, code, form.get("To", ""))
            except Exception as error:  # the database is down: Twilio may retry
                log.error("could not record a delivery report: %s", type(error).__name__)
                return Response(status_code=503)
        return Response(status_code=204)

    async def undelivered(
        self, kind: str, sid: str, status: str, code: int | None, to: str
    ) -> None:
        reason = f"{kind} {status}" + (f" (Twilio error {code})" if code else "")
        number = e164(to, self.settings.sms_region)
        if kind == "sms" and code in UNREACHABLE_DELIVERY_CODES and number is not None:
            await self.reachability.mark(Channel.SMS, False, chat_id=number)
            await self.reachability.stop_texts(number)  # another chat's customer's phone
        async with self.db.uow() as uow:
            if not await uow.inbox.record(SOURCE, f"report:{sid}:{status}"):
                return  # the same report again
            await uow.inbox.mark(SOURCE, f"report:{sid}:{status}", "done")
            await outbox.note_report(uow.session, sid, reason)
            sent = await outbox.sent_as(uow.session, sid)
            ticket_id = sent.payload.get("ticket_id") if sent is not None else None
            if kind == "sms" and sent is not None and isinstance(ticket_id, int):
                ticket = await uow.tickets.get(ticket_id)
                if ticket is not None:
                    ticket.record(
                        events.NoticeUndelivered(ticket_id, sent.event_id, sent.handler, reason)
                    )
            await uow.commit()
        log.info("twilio reported a %s %s (code %s)", kind, status, code)

    # -- the work --------------------------------------------------------------------------
    async def _record(self, key: str, payload: dict[str, Any]) -> int | None:
        async with self.db.uow() as uow:
            await uow.inbox.record(SOURCE, key, payload=payload)
            attempt = await uow.inbox.claim(SOURCE, key, CLAIM)
            await uow.commit()
        return attempt

    def _spawn(self, key: str, payload: dict[str, Any], attempt: int) -> None:
        task = asyncio.create_task(self.handle(key, payload, attempt), name=f"sms-{key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _retry_soon(self, key: str, delay: float = RETRY_SECONDS) -> None:
        """Try a text again shortly in this process (the replay would, but later)."""

        async def again() -> None:
            await asyncio.sleep(delay)
            async with self.db.uow() as uow:
                attempt = await uow.inbox.claim(SOURCE, key, CLAIM)
                payload = await uow.inbox.payload_of(SOURCE, key)
                await uow.commit()
            if attempt is not None:
                await self.handle(key, payload or {}, attempt)

        task = asyncio.create_task(again(), name=f"sms-retry-{key}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, seconds: float) -> None:
        """Wait for the texts being handled (shutdown); what is left is replayed later."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)

    async def handle(self, key: str, payload: dict[str, Any], attempt: int) -> None:
        """One claimed text, start to finish; never raises."""
        form: dict[str, str] = payload.get("form") or {}
        number = e164(form.get("From", ""), self.settings.sms_region)
        if number is None:  # a short code or an alphanumeric sender: nobody to answer
            await self._finish(key, "the sender is not a phone number")
            return
        if attempt > MAX_ATTEMPTS:
            log.error("text %s parked after %d attempts", key, attempt - 1)
            await self._finish(key, f"gave up after {attempt - 1} attempts")
            return
        async with self.locks.hold(number):
            try:
                error = await self._process(key, payload, form, number, attempt)
            except _Later:
                await self._let_go(key)
                self._retry_soon(key)
                return
            except Exception:  # the database or a bug: let go, replayed later
                log.exception("text %s failed", key)
                await self._let_go(key)
                return
        await self._finish(key, error)

    async def _process(
        self, key: str, payload: dict[str, Any], form: dict[str, str], number: str, attempt: int
    ) -> str | None:
        """None: done; a string: parked with that reason. Raises _Later to be run again."""
        stored = payload.get("replies") or ()
        replies: Sequence[Reply] = [Reply.from_json(item) for item in stored]
        sent = int(payload.get("sent", 0))
        if "replies" not in payload:
            word = keyword(form.get("Body", ""))
            if word in ("STOP", "START"):
                await self.opt(number, opted_in=word == "START")
                return None
            try:
                attachments = await self._media(key, form, number, attempt)
                command = "/help" if word == "HELP" else None
                replies = await self._turn(key, form, number, command, attachments)
            except Conflict as conflict:  # another replica changed the conversation: again
                self.metrics.turns.labels(SOURCE, "failed").inc()
                raise _Later from conflict
            except DomainError as failure:  # the same text would fail the same way
                self.metrics.turns.labels(SOURCE, "failed").inc()
                return f"{type(failure).__name__}: {failure}"
            self.metrics.turns.labels(SOURCE, "ok").inc()
            await self._keep(key, form, replies, 0)
        for index in range(sent, len(replies)):
            try:
                await self.channel.send(number, replies[index])
            except Unreachable as failure:  # opted out, a landline: nobody to answer
                await self.reachability.mark(Channel.SMS, False, external_id=number)
                return f"not delivered: {failure}"
            except PermanentFailure as failure:
                return str(failure)
            except RetryLater as later:
                await self._keep(key, form, replies, index)
                raise _Later from later
            if index + 1 < len(replies):
                await self._keep(key, form, replies, index + 1)
        return None

    async def _media(
        self, key: str, form: dict[str, str], number: str, attempt: int
    ) -> tuple[Attachment, ...]:
        """An MMS's photos and files, copied into the file store once each (a retried text
        finds them there). Fetched with the account's credentials, from Twilio's API host
        only. While Twilio does not hand one over the text is tried again later; after
        MEDIA_ATTEMPTS it goes on with the file named but not kept."""
        count = int(form["NumMedia"]) if form.get("NumMedia", "").isdigit() else 0
        kept: list[Attachment] = []
        for index in range(min(count, MAX_MEDIA)):
            url = form.get(f"MediaUrl{index}", "")
            declared = form.get(f"MediaContentType{index}") or None
            kind = "photo" if (declared or "").startswith("image/") else "file"
            named = Attachment(kind=kind, mime_type=declared)
            if self.files is None or not self._from_twilio(url):
                kept.append(named)
                continue
            stored_id = platform_file_id(SOURCE, f"{key}:{index}")
            try:
                found = await self.files.info(stored_id) or await self._fetch(
                    url, declared, stored_id, number
                )
            except httpx.HTTPError as error:
                if attempt < MEDIA_ATTEMPTS:
                    raise _Later from error
                log.warning("a file of text %s was not fetched; going on without it", key)
                kept.append(named)
                continue
            if found is None:  # a kind we do not keep, or too large: named, not stored
                kept.append(named)
                continue
            kept.append(
                Attachment(
                    kind=kind,
                    name=found.name,
                    mime_type=found.mime_type,
                    size=found.size,
                    stored_id=found.id,
                )
            )
        return tuple(kept)

    def _from_twilio(self, url: str) -> bool:
        base = urlsplit(self.settings.twilio_api_base_url)
        where = urlsplit(url)
        return (where.scheme, where.netloc) == (base.scheme, base.netloc)

    async def _fetch(
        self, url: str, declared: str | None, stored_id: str, number: str
    ) -> StoredFile | None:
        assert self.files is not None
        token = self.settings.twilio_auth_token
        assert self.settings.twilio_account_sid is not None and token is not None
        auth = (self.settings.twilio_account_sid, token.get_secret_value())
        limit = self.settings.max_upload_bytes
        async with (
            httpx.AsyncClient(timeout=30, follow_redirects=False) as client,
            client.stream("GET", url, auth=auth) as answer,
        ):
            answer.raise_for_status()
            content = bytearray()
            async for chunk in answer.aiter_bytes():
                content += chunk
                if len(content) > limit:
                    return None  # too large: named, not kept
        try:
            described = describe(
                bytes(content),
                name=None,
                declared=declared,
                limit=limit,
                file_id=stored_id,
                owner=f"{SOURCE}:{number}",
            )
        except FileRefused:
            return None
        return await self.files.put(described, bytes(content))

    async def _turn(
        self,
        key: str,
        form: dict[str, str],
        number: str,
        command: str | None,
        attachments: tuple[Attachment, ...] = (),
    ) -> Sequence[Reply]:
        assert self.engine is not None, "the engine is built before texts are received"
        text = command or form.get("Body", "")
        choice = None if command else await self._choice(number, text)
        said = UserSaid(
            channel=Channel.SMS,
            user_id=number,
            chat_id=number,
            text=choice.label if choice else text,
            message_id=key,
            choice=choice.value if choice else None,
            attachments=() if command else attachments,
        )
        return await self.engine.handle_turn(said)

    async def _choice(self, number: str, text: str) -> Choice | None:
        """The choice of the last text sent to this number that `text` picks ("2"), if any."""
        offered = await self.menus.last(number)
        if not offered:
            return None
        menu = Reply("", tuple(Choice(label, value) for label, value in offered))
        return menu.choice_for(text)

    async def opt(self, number: str, *, opted_in: bool) -> None:
        """STOP / START: whether the number may be texted. An opted-out number is unreachable,
        so its notices go by email like a blocked Telegram chat's; the customer's own choice
        of chat, email or both is kept for when they text START."""
        await self.reachability.mark(Channel.SMS, opted_in, external_id=number)
        await self.reachability.stop_texts(number, texts=opted_in)  # customers of other chats too
        log.info("an SMS number opted %s", "in" if opted_in else "out")

    async def _keep(
        self, key: str, form: dict[str, str], replies: Sequence[Reply], sent: int
    ) -> None:
        """The turn's replies, and how many are out: a later attempt resumes there."""
        payload = {"form": form, "replies": [r.to_json() for r in replies], "sent": sent}
        async with self.db.uow() as uow:
            await uow.inbox.keep(SOURCE, key, payload)
            await uow.commit()

    async def _finish(self, key: str, error: str | None) -> None:
        try:
            async with self.db.uow() as uow:
                await uow.inbox.mark(SOURCE, key, "parked" if error else "done", error)
                await uow.commit()
        except Exception as failure:  # the claim runs out; the replay finishes it
            log.warning("could not finish text %s: %s", key, type(failure).__name__)

    async def _let_go(self, key: str) -> None:
        with contextlib.suppress(Exception):  # else the claim runs out by itself
            async with self.db.uow() as uow:
                await uow.inbox.release(SOURCE, key)
                await uow.commit()

    # -- replay ----------------------------------------------------------------------------
    async def replay_pending(self, older_than: timedelta = timedelta(seconds=30)) -> int:
        """Take up the texts left unfinished (a crash, a failed attempt); how many."""
        async with self.db.uow() as uow:
            rows = await uow.inbox.pending(SOURCE, older_than, REPLAY_BATCH)
        taken = 0
        for key, payload in rows:
            async with self.db.uow() as uow:
                attempt = await uow.inbox.claim(SOURCE, key, CLAIM)
                await uow.commit()
            if attempt is not None:
                taken += 1
                await self.handle(key, payload or {}, attempt)
        return taken

    async def replay_forever(self, stop: asyncio.Event, every: float = REPLAY_EVERY) -> None:
        """`replay_pending` at start (what the last process left), then every `every` s."""
        while not stop.is_set():
            try:
                await self.replay_pending()
            except Exception as error:  # the database briefly down: the next round retries
                log.warning("could not replay pending texts (%s)", type(error).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
