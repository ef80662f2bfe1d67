"""Email out: SendGrid's v3 API through the SDK (synchronous: calls run in a thread), or a
local mailbox folder offline."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
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

log = logging.getLogger("bots.email")


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
