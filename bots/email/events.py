"""SendGrid's Event Webhook in: signed batches whose bounces, drops and spam reports stop mail
to that address (`email_suppressions`, `customers.email_blocked`)."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request, Response

from core import jsonguard
from core.db.database import Database
from core.db.suppressions import suppress
from core.jsonguard import RefusedBody, read_capped

if TYPE_CHECKING:  # cryptography (SendGrid's helper) costs 0.1 s at start: imported when used
    from sendgrid.helpers.eventwebhook import EventWebhook

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"  # sendgrid's EventWebhookHeader
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

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
        timestamp = request.headers[TIMESTAMP_HEADER]
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
    if not public_key:
        return None
    from sendgrid.helpers.eventwebhook import EventWebhook

    return EventWebhook(public_key)


def signed_by_sendgrid(verifier: EventWebhook, raw: bytes, headers: Mapping[str, str]) -> bool:
    """ECDSA P-256 over timestamp + the body's bytes, signed within REPLAY_WINDOW of now.

    The bytes, not a decoded text: an Inbound Parse body carries attachments in any encoding.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = headers.get(SIGNATURE_HEADER)
    timestamp = headers.get(TIMESTAMP_HEADER)
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
        if request_key is not None and not await uow.inbox.record(SEEN_SOURCE, request_key):
            log.info("sendgrid: an event batch seen before was delivered again; ignored")
            return 0
        for event in events:
            kind = str(event.get("event", ""))
            address = str(event.get("email", "")).strip().lower()
            # A "blocked" bounce is temporary (the receiving server said not now).
            if kind not in SUPPRESSING_EVENTS or not address or event.get("type") == "blocked":
                continue
            event_id = str(event.get("sg_event_id") or "")
            if event_id and not await uow.inbox.record("sendgrid", event_id):
                continue  # SendGrid redelivered the batch
            await suppress(uow.session, address, kind)
            if event_id:
                await uow.inbox.mark("sendgrid", event_id, "done")
            suppressed += 1
        if request_key is not None:
            await uow.inbox.mark(SEEN_SOURCE, request_key, "done")
        await uow.commit()
    if suppressed:
        log.info("sendgrid: %d address(es) suppressed after bounces or spam reports", suppressed)
    return suppressed
