"""SendGrid's v3 Mail Send through the official SDK (synchronous: calls run in a thread).

Imported only when a SendGrid key is set: the SDK and its helpers take about 30 ms to load.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
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
from bots.email.senders import Email


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
