"""Customers answer our emails: SendGrid Inbound Parse at POST /sendgrid/inbound.

Every notice to a customer carries a Reply-To of its own, `reply+<ticket>-<mac>@<domain>`
(`CARELINE_EMAIL_REPLY_DOMAIN`, the hostname whose MX points at SendGrid). The mac is an
HMAC of the ticket id with Careline's secret key, so nobody can forge an address for another
ticket. SendGrid posts each mail it receives there as multipart/form-data
(https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/setting-up-the-inbound-parse-webhook),
signed like the Event Webhook when a security policy with signature verification is attached
(https://www.twilio.com/docs/sendgrid/for-developers/parsing-email/securing-your-parse-webhooks):
ECDSA P-256 over timestamp + body, verified with `SENDGRID_INBOUND_PUBLIC_KEY`.

A reply is added to its ticket as the customer's message (a resolved ticket reopens within
the reopen window) only when it comes from the customer's verified address; the quoted
history below the customer's words is dropped. The mail's Message-ID makes SendGrid's
retries no-ops. Anything we do not take is answered 200 all the same (a non-2xx makes
SendGrid retry for three days) and logged without addresses or words.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from email.message import Message as MimeMessage
from email.utils import getaddresses, parseaddr

from fastapi import APIRouter, HTTPException, Request, Response

from bots.email.events import sendgrid_verifier, signed_by_sendgrid
from core import services
from core.db.database import Database
from core.errors import DomainError
from core.jsonguard import RefusedBody, read_capped
from core.model import Channel

log = logging.getLogger(__name__)

ROUTE = "/sendgrid/inbound"
LOCAL_PART = "reply"
#: SendGrid's limit for a whole inbound message, attachments included, is 30 MB.
MAX_BODY = 30 * 1024 * 1024
MAC_LENGTH = 20  # hex digits: 80 bits, far beyond guessing within any rate limit
_REPLY = re.compile(rf"^{LOCAL_PART}\+(\d{{1,18}})-([0-9a-f]{{{MAC_LENGTH}}})$")
#: Where the quoted history of a reply begins, in the mail programs customers use.
_QUOTE_STARTS = (
    re.compile(r"^\s*On .{0,300}wrote:\s*$", re.IGNORECASE | re.DOTALL),  # Gmail, Apple Mail
    re.compile(r"^\s*-{2,}\s*Original Message\s*-{2,}", re.IGNORECASE),  # Outlook
    re.compile(r"^\s*From:\s.+", re.IGNORECASE),  # Outlook's header block
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook's rule above that block
    re.compile(r"^-- $"),  # a signature
)


@dataclass(frozen=True, slots=True)
class ReplyAddresses:
    """Makes and reads the per-ticket Reply-To addresses."""

    domain: str
    secret: bytes

    def for_ticket(self, ticket_id: int) -> str:
        return f"{LOCAL_PART}+{ticket_id}-{self._mac(ticket_id)}@{self.domain}"

    def ticket(self, address: str) -> int | None:
        local, _, domain = address.strip().lower().rpartition("@")
        found = _REPLY.match(local)
        if found is None or domain != self.domain.lower():
            return None
        ticket_id = int(found.group(1))
        return ticket_id if hmac.compare_digest(found.group(2), self._mac(ticket_id)) else None

    @classmethod
    def keyed(cls, domain: str, key: str) -> ReplyAddresses:
        """From Careline's secret key (the one every replica shares), for this use only."""
        secret = hmac.new(key.encode(), b"careline-email-reply", hashlib.sha256).digest()
        return cls(domain, secret)

    def _mac(self, ticket_id: int) -> str:
        message = f"careline-reply:{ticket_id}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:MAC_LENGTH]


def new_text(text: str) -> str:
    """The customer's own words: the reply above its quoted history and signature."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        two = line + " " + (lines[i + 1] if i + 1 < len(lines) else "")  # "On ...\nwrote:"
        if line.lstrip().startswith(">") or any(p.match(line) for p in _QUOTE_STARTS):
            break
        if _QUOTE_STARTS[0].match(two) and not line.rstrip().endswith("wrote:"):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def form_fields(content_type: str, raw: bytes) -> dict[str, str]:
    """The text fields of a multipart/form-data body (attachments are not read here)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    parsed = email.message_from_bytes(head + raw, policy=email.policy.HTTP)
    fields: dict[str, str] = {}
    if not parsed.is_multipart():
        return fields
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename():
            continue
        fields[name] = _text_of(part)
    return fields


def _text_of(part: MimeMessage) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def _recipients(fields: dict[str, str]) -> list[str]:
    """The SMTP envelope's recipients (where it was really delivered), then the To header."""
    found: list[str] = []
    try:
        envelope = json.loads(fields.get("envelope", "") or "{}")
    except ValueError:
        envelope = {}
    if isinstance(envelope, dict) and isinstance(envelope.get("to"), list):
        found += [str(a) for a in envelope["to"]]
    found += [address for _, address in getaddresses([fields.get("to", "")])]
    return found


def _message_id(fields: dict[str, str]) -> str | None:
    headers = email.message_from_string(fields.get("headers", ""), policy=email.policy.default)
    value = headers.get("Message-ID")
    return str(value).strip()[:255] if value else None


def email_inbound_router(
    db: Database,
    reply_addresses: Callable[[], ReplyAddresses | None],
    public_key: str | None,
    reopen_window: timedelta | None = None,
) -> APIRouter:
    """POST /sendgrid/inbound; refuses everything (503) until a domain and a key are set.

    `reply_addresses` is read per request: the secret behind them is loaded at start-up.
    """
    router = APIRouter()
    verifier = sendgrid_verifier(public_key)

    @router.post(ROUTE)
    async def inbound(request: Request) -> Response:
        addresses = reply_addresses()
        if addresses is None or verifier is None:
            raise HTTPException(503, "email replies are not configured")
        try:
            raw = await read_capped(
                request.stream(), declared=request.headers.get("content-length"), limit=MAX_BODY
            )
        except RefusedBody as refused:
            raise HTTPException(refused.status, str(refused)) from None
        if not signed_by_sendgrid(verifier, raw, request.headers):
            log.warning("email in: refused a request with a bad, missing or stale signature")
            raise HTTPException(403, "bad or missing Inbound Parse signature")
        fields = form_fields(request.headers.get("content-type", ""), raw)
        ticket_id = next(
            (t for t in map(addresses.ticket, _recipients(fields)) if t is not None), None
        )
        if ticket_id is None:
            log.info("email in: a mail to no ticket's reply address; ignored")
            return Response(status_code=200)
        await _take(db, ticket_id, fields, reopen_window)
        return Response(status_code=200)

    return router


async def _take(
    db: Database, ticket_id: int, fields: dict[str, str], window: timedelta | None
) -> None:
    sender = parseaddr(fields.get("from", ""))[1].strip().lower()
    words = new_text(fields.get("text", ""))
    async with db.uow() as uow:
        try:
            ticket = await services.get_ticket(uow, ticket_id)
            customer = await services.get_customer(uow, ticket.customer_id)
        except DomainError:
            log.info("email in: a reply to a ticket that is gone; ignored")
            return
        if not (customer.email and customer.email_verified and sender == customer.email.lower()):
            log.warning("email in: a reply to ticket %s not from its customer; ignored", ticket_id)
            return
        if not words:
            log.info("email in: a reply to ticket %s with no new words; ignored", ticket_id)
            return
        try:
            await services.add_customer_message(
                uow,
                ticket_id,
                words[: services.MAX_BODY],
                channel=Channel.EMAIL,
                external_id=_message_id(fields),
                reopen_window=window or services.DEFAULT_REOPEN_WINDOW,
            )
        except DomainError as refused:  # closed, or resolved too long ago
            log.info("email in: a reply to ticket %s not taken: %s", ticket_id, refused)
            return
        await uow.commit()
    log.info("email in: added a reply to ticket %s", ticket_id)
