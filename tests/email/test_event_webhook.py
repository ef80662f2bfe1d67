"""SendGrid's signed Event Webhook stops mail to addresses that bounce or report spam."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import select

from bots.email import LocalMailbox, sendgrid_events_router
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay
from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Channel
from tests.relay.support import CollectingChannel, customer_with_ticket, deliveries, drain

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Signer:
    """Signs like SendGrid: ECDSA P-256 over timestamp + body; we keep the public half."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: str) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = self.key.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp}


def client_for(db: Database, public_key: str | None) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(sendgrid_events_router(db, public_key))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def events(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


async def blocked(db: Database) -> dict[str | None, bool]:
    c = t.customers.c
    async with db.engine.connect() as conn:
        return dict((await conn.execute(select(c.email, c.email_blocked))).all())


async def test_signed_bounce_and_spam_report_block_those_addresses(db: Database) -> None:
    signer = Signer()
    await customer_with_ticket(db, "mia", email="mia@example.org")
    await customer_with_ticket(db, "leo", email="Leo@Example.org")
    await customer_with_ticket(db, "ana", email="ana@example.org")
    body = events(
        {"email": "mia@example.org", "event": "bounce", "sg_event_id": "e1", "type": "bounce"},
        {"email": "leo@example.org", "event": "spamreport", "sg_event_id": "e2"},
        {"email": "ana@example.org", "event": "delivered", "sg_event_id": "e3"},
        {"email": "ana@example.org", "event": "bounce", "sg_event_id": "e4", "type": "blocked"},
    )
    async with client_for(db, signer.public_key) as client:
        response = await client.post("/sendgrid/events", content=body, headers=signer.headers(body))
    assert response.status_code == 204
    assert await blocked(db) == {
        "mia@example.org": True,
        "Leo@Example.org": True,
        "ana@example.org": False,  # delivered, and a temporary "blocked" bounce
    }
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(t.email_suppressions))).mappings().all()
    assert {(r["email"], r["reason"]) for r in rows} == {
        ("mia@example.org", "bounce"),
        ("leo@example.org", "spamreport"),
    }


async def test_unsigned_or_badly_signed_events_are_refused(db: Database) -> None:
    signer, impostor = Signer(), Signer()
    await customer_with_ticket(db, "mia", email="mia@example.org")
    body = events({"email": "mia@example.org", "event": "dropped", "sg_event_id": "x"})
    async with client_for(db, signer.public_key) as client:
        unsigned = await client.post("/sendgrid/events", content=body)
        forged = await client.post("/sendgrid/events", content=body, headers=impostor.headers(body))
        garbage = await client.post(
            "/sendgrid/events", content=body, headers={SIGNATURE: "!!", TIMESTAMP: "1"}
        )
        headers = signer.headers(body)
        tampered = await client.post(
            "/sendgrid/events", content=body.replace("mia", "leo"), headers=headers
        )
    assert [r.status_code for r in (unsigned, forged, garbage, tampered)] == [403] * 4
    assert await blocked(db) == {"mia@example.org": False}


async def test_without_a_public_key_the_webhook_refuses_everything(db: Database) -> None:
    body = events({"email": "mia@example.org", "event": "bounce"})
    async with client_for(db, None) as client:
        response = await client.post("/sendgrid/events", content=body)
    assert response.status_code == 503


async def test_no_more_mail_goes_to_a_bounced_address(db: Database, tmp_path: Path) -> None:
    signer = Signer()
    _, ticket_id, _ = await customer_with_ticket(db, "mia", email="mia@example.org")
    handlers = Handlers()
    mailbox = LocalMailbox(tmp_path / "mailbox", sender="support@careline.test")
    notices = CustomerNotices(db, channels={Channel.TELEGRAM: CollectingChannel()}, email=mailbox)
    notices.register(handlers)
    relay = Relay(db, handlers)
    await drain(relay)
    assert len(list((tmp_path / "mailbox").glob("*.eml"))) == 1  # the opening notice

    body = events({"email": "mia@example.org", "event": "bounce", "sg_event_id": "b1"})
    async with client_for(db, signer.public_key) as client:
        for _ in range(2):  # SendGrid redelivers; the second is a no-op
            response = await client.post(
                "/sendgrid/events", content=body, headers=signer.headers(body)
            )
            assert response.status_code == 204
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket_id)
        await uow.commit()
    await drain(relay)

    assert len(list((tmp_path / "mailbox").glob("*.eml"))) == 1
    assert any(
        r["handler"] == "customer_email" and r["status"] == "skipped"
        for r in (await deliveries(db)).values()
    )


def test_the_signature_headers_are_the_sdks() -> None:
    """Named here so the SDK's helper (and cryptography) load only when a signature is
    checked; they must stay SendGrid's."""
    from sendgrid.helpers.eventwebhook import EventWebhookHeader

    from bots.email.events import SIGNATURE_HEADER, TIMESTAMP_HEADER

    assert (SIGNATURE_HEADER, TIMESTAMP_HEADER) == (
        EventWebhookHeader.SIGNATURE,
        EventWebhookHeader.TIMESTAMP,
    )
