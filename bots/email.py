"""Email out (SendGrid, or a local mailbox offline) and SendGrid's Event Webhook in.

The only module that imports `sendgrid`. The SDK is synchronous: calls run in a thread.
Bounces, drops and spam reports reported by the Event Webhook stop mail to that address
(`email_suppressions`, `customers.email_blocked`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.error import URLError

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, HTTPException, Request, Response
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader
from sendgrid.helpers.mail import Attachment as SendGridAttachment
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Mail,
    ReplyTo,
)

from bots.channels import PermanentFailure, RetryLater
from core import jsonguard
from core.db import inbox
from core.db.database import Database
from core.db.suppressions import suppress
from core.jsonguard import RefusedBody, read_capped

log = logging.getLogger(__name__)

#: Event Webhook events that mean "never mail this address again".
SUPPRESSING_EVENTS = frozenset({"bounce", "dropped", "spamreport"})
#: A signed batch is accepted this many seconds either side of its signed timestamp (Slack's
#: window too); an older copy is a replay. SendGrid signs timestamp + body for this:
#: https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
REPLAY_WINDOW = 5 * 60
#: Inbox source of the signed batches already applied (the seen-request cache; retention
#: deletes its rows with the other inbox rows, long after REPLAY_WINDOW).
SEEN_SOURCE = "sendgrid-events"
#: SendGrid posts a batch when it reaches 768 KB or every 30 s (the Event Webhook overview);
#: the last event can push it over, so twice that is the most we read.
MAX_BODY = 2 * 768 * 1024


@dataclass(frozen=True, slots=True)
class EmailAttachment:
    filename: str
    mime_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Email:
    """One email: plain text always, HTML when there is a template for it."""

    to: str
    subject: str
    text: str
    html: str | None = None
    category: str = "notice"  # SendGrid category: notice kind, for the stats there
    key: str | None = None  # the relay's idempotency key, echoed back by the Event Webhook
    reply_to: str | None = None  # where a reply goes (its ticket's address); else the sender's
    attachments: tuple[EmailAttachment, ...] = ()


class EmailSender(Protocol):
    """Sends one email; returns the provider's message id. Raises a bots.channels error."""

    async def send(self, email: Email) -> str: ...


class SendGridEmail:
    """SendGrid v3 Mail Send through the official `sendgrid` library."""

    def __init__(
        self,
        api_key: str,
        *,
        host: str = "https://api.sendgrid.com",
        sender: str,
        reply_to: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = SendGridAPIClient(api_key, host=host)
        self._client.client.timeout = timeout  # the SDK's default is to wait forever
        self.sender = sender
        self.reply_to = reply_to

    async def send(self, email: Email) -> str:
        return await asyncio.to_thread(self._send, email)

    def _send(self, email: Email) -> str:
        try:
            response = self._client.send(self._mail(email))
        except HTTPError as exc:
            raise _classify(exc) from None
        except (TimeoutError, URLError, ConnectionError) as exc:
            raise RetryLater(f"SendGrid did not answer: {exc}", seconds=5.0) from None
        if response.status_code != 202:
            raise RetryLater(f"SendGrid answered {response.status_code}", seconds=5.0)
        return str(response.headers.get("X-Message-Id") or "")

    def _mail(self, email: Email) -> Mail:
        mail = Mail(
            from_email=self.sender,
            to_emails=email.to,
            subject=email.subject,
            plain_text_content=email.text,
            html_content=email.html,
        )
        if email.reply_to or self.reply_to:
            mail.reply_to = ReplyTo(email.reply_to or self.reply_to)
        mail.category = Category(email.category)
        for attachment in email.attachments:
            mail.add_attachment(
                SendGridAttachment(
                    FileContent(base64.b64encode(attachment.content).decode("ascii")),
                    FileName(attachment.filename),
                    FileType(attachment.mime_type),
                    Disposition("attachment"),
                )
            )
        if email.key:
            # Per personalization: the published spec types a top-level custom_args as a string.
            mail.custom_arg = CustomArg("careline_key", email.key, p=0)
        return mail


def _classify(exc: HTTPError) -> Exception:
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = getattr(exc, "headers", None) or {}
    reason = _reason(getattr(exc, "body", b""))
    if status == 429 or status >= 500:
        return RetryLater(f"SendGrid {status}: {reason}", seconds=_wait_hint(headers, status))
    if status in (401, 403):  # a key problem an admin fixes; keep the mail until then
        return RetryLater(f"SendGrid {status} (check the API key): {reason}", seconds=300.0)
    return PermanentFailure(f"SendGrid {status}: {reason}")


def _wait_hint(headers: Any, status: int) -> float:
    """Retry-After (seconds), else SendGrid's X-RateLimit-Reset (epoch seconds)."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            pass
    return 1.0 if status == 429 else 5.0


def _reason(body: Any) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        errors = json.loads(text).get("errors") or []
        return "; ".join(str(e.get("message", e)) for e in errors)[:500] or text[:500]
    except (ValueError, AttributeError):
        return text[:500]


class LocalMailbox:
    """The embedded default: each email becomes an .eml file, so the flow is visible offline."""

    def __init__(self, folder: Path, *, sender: str, reply_to: str | None = None) -> None:
        self.folder = folder
        self.sender = sender
        self.reply_to = reply_to

    async def send(self, email: Email) -> str:
        return await asyncio.to_thread(self._write, email)

    def _write(self, email: Email) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = email.to
        if email.reply_to or self.reply_to:
            message["Reply-To"] = email.reply_to or self.reply_to
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="careline.local")
        message["X-Careline-Category"] = email.category
        if email.key:
            message["X-Careline-Key"] = email.key
        message.set_content(email.text)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        for attachment in email.attachments:
            main, _, sub = attachment.mime_type.partition("/")
            message.add_attachment(
                attachment.content, maintype=main, subtype=sub, filename=attachment.filename
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}.eml"
        # Whole or not at all: a mail client watching the folder never reads half a message.
        partial = self.folder / f".{name}.part"
        partial.write_bytes(bytes(message))
        partial.rename(self.folder / name)
        # No address or content in the log: the file holds them.
        log.info("mailbox: stored an email (%s) as %s", email.category.replace("_", " "), name)
        return f"local:{name}"


def build_email(settings: Any) -> EmailSender:
    """SendGrid when `SENDGRID_API_KEY` is set, else the local mailbox (settings: Settings)."""
    if settings.sendgrid_api_key is not None:
        return SendGridEmail(
            settings.sendgrid_api_key.get_secret_value(),
            host=settings.sendgrid_api_host,
            sender=settings.email_from,
            reply_to=settings.email_reply_to,
        )
    folder = settings.mailbox_dir or str(Path(settings.data_dir) / "mailbox")
    return LocalMailbox(Path(folder), sender=settings.email_from, reply_to=settings.email_reply_to)


# --- SendGrid Event Webhook -------------------------------------------------------------


def sendgrid_events_router(db: Database, public_key: str | None) -> APIRouter:
    """POST /sendgrid/events: signed Event Webhook batches (mount it on the public app).

    Without `SENDGRID_WEBHOOK_PUBLIC_KEY` every request is refused: unsigned events could
    otherwise stop anybody's mail. So is a batch signed more than REPLAY_WINDOW away from
    now (403); a signed batch seen before, by any replica, is answered 204 and changes
    nothing. The body is read with a cap (413) and parsed by `core.jsonguard` (400).
    """
    router = APIRouter()
    verifier = sendgrid_verifier(public_key)

    @router.post("/sendgrid/events", status_code=204)
    async def sendgrid_events(request: Request) -> Response:
        if verifier is None:
            raise HTTPException(503, "the SendGrid Event Webhook is not configured")
        try:
            raw = await read_capped(
                request.stream(), declared=request.headers.get("content-length"), limit=MAX_BODY
            )
        except RefusedBody as refused:
            log.warning("sendgrid: refused an event batch: %s", refused)
            raise HTTPException(refused.status, str(refused)) from None
        if not signed_by_sendgrid(verifier, raw, request.headers):
            log.warning("sendgrid: refused an event batch with a bad, missing or stale signature")
            raise HTTPException(403, "bad or missing Event Webhook signature")
        body = raw.decode("utf-8", "replace")
        timestamp = request.headers[EventWebhookHeader.TIMESTAMP]
        try:
            events = jsonguard.loads(body)
        except RefusedBody as refused:  # signed by SendGrid, yet not JSON we can take
            log.warning("sendgrid: refused a signed event batch: %s", refused)
            raise HTTPException(400, str(refused)) from None
        if not isinstance(events, list):
            raise HTTPException(400, "expected a JSON array of events")
        batch = [e for e in events if isinstance(e, dict)]
        await apply_email_events(db, batch, request_key=_request_key(timestamp, body))
        return Response(status_code=204)

    return router


def sendgrid_verifier(public_key: str | None) -> EventWebhook | None:
    """The verifier of SendGrid's signed webhooks (Event Webhook, Inbound Parse)."""
    return EventWebhook(public_key) if public_key else None


def signed_by_sendgrid(verifier: EventWebhook, raw: bytes, headers: Mapping[str, str]) -> bool:
    """ECDSA P-256 over timestamp + the body's bytes, signed within REPLAY_WINDOW of now.

    The bytes, not a decoded text: an Inbound Parse body carries attachments in any encoding.
    """
    signature = headers.get(EventWebhookHeader.SIGNATURE)
    timestamp = headers.get(EventWebhookHeader.TIMESTAMP)
    if not signature or not timestamp or not _recent(timestamp):
        return False
    try:
        verifier.public_key.verify(
            base64.b64decode(signature, validate=True),
            timestamp.encode() + raw,
            ec.ECDSA(hashes.SHA256()),
        )
    except (InvalidSignature, ValueError, TypeError):  # not base64, not DER, or not ours
        return False
    return True


def _recent(timestamp: str) -> bool:
    """Within REPLAY_WINDOW of our clock, either way (clocks drift in both directions)."""
    try:
        return abs(time.time() - int(timestamp)) <= REPLAY_WINDOW
    except ValueError:
        return False


def _request_key(timestamp: str, body: str) -> str:
    # What was signed, not the signature: an ECDSA signature has a twin (s -> n - s) that
    # verifies as well, so a replay could come with different signature bytes.
    return hashlib.sha256((timestamp + body).encode()).hexdigest()


async def apply_email_events(
    db: Database, events: list[dict[str, Any]], *, request_key: str | None = None
) -> int:
    """Suppress addresses that bounced, were dropped or reported spam; returns how many.

    `request_key` identifies the signed request: one seen before (a replay, or SendGrid
    delivering it twice) changes nothing. It is recorded in the same transaction as its
    effects, in the database every replica shares.
    """
    suppressed = 0
    async with db.uow() as uow:
        session = uow.session
        if request_key is not None and not await inbox.record(session, SEEN_SOURCE, request_key):
            log.info("sendgrid: an event batch seen before was delivered again; ignored")
            return 0
        for event in events:
            kind = str(event.get("event", ""))
            address = str(event.get("email", "")).strip().lower()
            # A "blocked" bounce is temporary (the receiving server said not now).
            if kind not in SUPPRESSING_EVENTS or not address or event.get("type") == "blocked":
                continue
            event_id = str(event.get("sg_event_id") or "")
            if event_id and not await inbox.record(session, "sendgrid", event_id):
                continue  # SendGrid redelivered the batch
            await suppress(session, address, kind)
            if event_id:
                await inbox.mark(session, "sendgrid", event_id, "done")
            suppressed += 1
        if request_key is not None:
            await inbox.mark(session, SEEN_SOURCE, request_key, "done")
        await uow.commit()
    if suppressed:
        log.info("sendgrid: %d address(es) suppressed after bounces or spam reports", suppressed)
    return suppressed
