"""The Event Webhook against replays, oversize and hostile JSON (issue 15)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from sqlalchemy import delete, update

from core.db import tables as t
from core.db.database import Database
from tests.email.test_event_webhook import SIGNATURE, TIMESTAMP, Signer, blocked, client_for, events
from tests.relay.support import customer_with_ticket

#: The order of P-256: (r, s) and (r, n - s) are both valid signatures of the same message.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SECRET_TEXT = "victim@example.com"  # what must never reach a log line


def signed_at(signer: Signer, body: str, stamp: int) -> dict[str, str]:
    signature = signer.key.sign((str(stamp) + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: str(stamp)}


def twin(headers: dict[str, str]) -> dict[str, str]:
    """The same signature with s -> n - s: other bytes, still valid."""
    r, s = decode_dss_signature(base64.b64decode(headers[SIGNATURE]))
    other = encode_dss_signature(r, P256_ORDER - s)
    return {**headers, SIGNATURE: base64.b64encode(other).decode()}


async def unblock(db: Database) -> None:
    """What an admin does after checking the address: mail may go there again."""
    async with db.engine.begin() as conn:
        await conn.execute(delete(t.email_suppressions))
        await conn.execute(update(t.customers).values(email_blocked=False))


def bounce() -> str:
    # No sg_event_id: the per-event dedupe cannot help, only the seen-request cache can.
    return events({"email": "victim@example.com", "event": "bounce", "type": "bounce"})


@pytest.mark.parametrize("skew", [-3600, 3600, -301], ids=["hour-old", "hour-ahead", "stale"])
async def test_replayed_sendgrid_event_is_refused(db: Database, skew: int) -> None:
    signer = Signer()
    await customer_with_ticket(db, "vic", email="victim@example.com")
    body = bounce()
    async with client_for(db, signer.public_key) as client:
        headers = signed_at(signer, body, int(time.time()) + skew)
        response = await client.post("/sendgrid/events", content=body, headers=headers)
    assert response.status_code == 403
    assert await blocked(db) == {"victim@example.com": False}


async def test_the_same_signed_batch_is_applied_once(db: Database) -> None:
    signer = Signer()
    await customer_with_ticket(db, "vic", email="victim@example.com")
    body = bounce()
    headers = signer.headers(body)
    async with client_for(db, signer.public_key) as client:
        first = await client.post("/sendgrid/events", content=body, headers=headers)
        assert first.status_code == 204
        assert await blocked(db) == {"victim@example.com": True}
        await unblock(db)
        again = await client.post("/sendgrid/events", content=body, headers=headers)
        twinned = await client.post("/sendgrid/events", content=body, headers=twin(headers))
    # Answered like a redelivery (SendGrid stops retrying), and changes nothing.
    assert (again.status_code, twinned.status_code) == (204, 204)
    assert await blocked(db) == {"victim@example.com": False}


async def test_a_batch_applied_by_one_replica_is_not_applied_by_another(db: Database) -> None:
    signer = Signer()
    await customer_with_ticket(db, "vic", email="victim@example.com")
    body = bounce()
    headers = signer.headers(body)
    async with client_for(db, signer.public_key) as replica_a:
        assert (await replica_a.post("/sendgrid/events", content=body, headers=headers)).is_success
    await unblock(db)
    async with client_for(db, signer.public_key) as replica_b:  # its own router, same database
        assert (await replica_b.post("/sendgrid/events", content=body, headers=headers)).is_success
    assert await blocked(db) == {"victim@example.com": False}


async def test_deeply_nested_signed_batch_is_refused_and_the_next_one_applies(
    db: Database,
) -> None:
    signer = Signer()
    await customer_with_ticket(db, "vic", email="victim@example.com")
    deep = "[" * 50_000 + "]" * 50_000
    async with client_for(db, signer.public_key) as client:
        refused = await client.post("/sendgrid/events", content=deep, headers=signer.headers(deep))
        body = bounce()
        applied = await client.post("/sendgrid/events", content=body, headers=signer.headers(body))
    assert refused.status_code == 400
    assert "nested" in refused.json()["detail"]
    assert applied.status_code == 204
    assert await blocked(db) == {"victim@example.com": True}


async def test_oversize_batch_is_refused_before_it_is_read(db: Database) -> None:
    signer = Signer()
    pulled: list[int] = []

    async def ten_megabytes() -> AsyncIterator[bytes]:
        for _ in range(160):
            pulled.append(1)
            yield b"x" * 65_536

    async with client_for(db, signer.public_key) as client:
        declared = await client.post(
            "/sendgrid/events",
            content=ten_megabytes(),
            headers={"Content-Length": str(160 * 65_536), **signer.headers("")},
        )
        assert declared.status_code == 413
        assert pulled == []  # the Content-Length said enough
        chunked = await client.post(
            "/sendgrid/events", content=ten_megabytes(), headers=signer.headers("")
        )
    assert chunked.status_code == 413
    assert len(pulled) < 160  # stopped at the cap (2 x 768 KB), not at 10 MB


async def test_refused_batches_leave_no_body_in_the_log(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    signer, impostor = Signer(), Signer()
    body = events({"email": SECRET_TEXT, "event": "bounce", "text": "[" * 100})
    old = int(time.time()) - 3600
    async with client_for(db, signer.public_key) as client:
        answers = [
            await client.post("/sendgrid/events", content=body, headers=impostor.headers(body)),
            await client.post(
                "/sendgrid/events", content=body, headers=signed_at(signer, body, old)
            ),
            await client.post("/sendgrid/events", content=body + " " * 3_000_000),
        ]
    assert [a.status_code for a in answers] == [403, 403, 413]
    assert caplog.records  # the refusals are logged...
    assert not [r for r in caplog.records if SECRET_TEXT in r.getMessage()]  # ...without bodies
