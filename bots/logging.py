"""Process logging: plain or JSON lines, a request id on every line, secrets never written.

`configure_logging` is called once by the composition root. Log lines carry ids (update id,
chat id, ticket reference), never message texts or e-mail addresses; the redaction filter
is the safety net for secrets that libraries put into URLs (the Bot API token is part of
every Telegram request URL, and httpx logs request URLs) and for e-mail addresses.
Libraries that log what they carry are held at a level where they do not, whatever the
process's level (`CHATTY`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUEST_ID_HEADER = b"x-request-id"
_STANDARD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# An E.164 phone number (SMS customers): never written, whoever put it in a message.
PHONE = re.compile(r"\+[1-9]\d{6,14}\b")

# The lowest level each library may log at.
CHATTY = {
    # Request URLs at INFO, and Bot API URLs contain the token.
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram.ext": logging.WARNING,
    "apscheduler": logging.WARNING,
    # uvicorn hands this logger to `websockets`, which logs every handshake header (cookies,
    # the visitor's token) and every frame (what customers write) at DEBUG.
    "uvicorn.error": logging.INFO,
    "websockets": logging.INFO,
    # Each database call with its parameters at DEBUG.
    "aiosqlite": logging.INFO,
    # Every Web API request and response body (message texts, user profiles) at DEBUG.
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    # Every Twilio request's URL and headers at INFO.
    "twilio": logging.WARNING,
}


class RedactSecrets(logging.Filter):
    """Replaces every known secret, e-mail address and phone number in a record's message
    (and arguments) and in its traceback by `***`."""

    def __init__(self, secrets_: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets_ if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # An exception's text carries what its raiser put in it (an address refused, a URL
        # with a token): formatted once here, redacted, and kept where formatters look.
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    def redact(self, text: str) -> str:
        redacted = PHONE.sub("+***", EMAIL.sub("***@***", text))
        for secret in self.secrets:
            redacted = redacted.replace(secret, "***")
        return redacted


_TRACEBACKS = logging.Formatter()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD_FIELDS and name not in line:
                line[name] = value if isinstance(value, str | int | float | bool) else str(value)
        if record.exc_info:
            line["error"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    level: str = "info", *, json_lines: bool = False, secrets_: Iterable[str] = ()
) -> None:
    """Set up the root logger once per process (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactSecrets(secrets_))
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_careline", False)]:
        root.removeHandler(old)
    handler._careline = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, lowest in CHATTY.items():
        logging.getLogger(name).setLevel(max(lowest, root.level))
    migration = logging.getLogger("alembic.runtime.migration")
    if not any(isinstance(f, QuietMigrationContext) for f in migration.filters):
        migration.addFilter(QuietMigrationContext())


class QuietMigrationContext(logging.Filter):
    """Drops the two lines Alembic logs each time it looks at the schema (every /readyz)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Context impl ", "Will assume "))


class RequestIdMiddleware:
    """Gives every HTTP request an id (the caller's `X-Request-ID`, or a new one) for logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == REQUEST_ID_HEADER), b"")
        rid = given.decode("latin-1")[:64] if given else secrets.token_hex(6)
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                header = (REQUEST_ID_HEADER, rid.encode())
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
