"""Email out: SendGrid's v3 API through the SDK (`sendgrid_mail`), or a local mailbox folder
offline."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol

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
        from bots.email.sendgrid_mail import SendGridEmail  # the SDK only when it is used

        return SendGridEmail(
            settings.sendgrid_api_key.get_secret_value(),
            host=settings.sendgrid_api_host,
            sender=settings.email_from,
            reply_to=settings.email_reply_to,
        )
    folder = settings.mailbox_dir or str(Path(settings.data_dir) / "mailbox")
    return LocalMailbox(Path(folder), sender=settings.email_from, reply_to=settings.email_reply_to)
