"""Customers answer our emails: SendGrid Inbound Parse posts reach their ticket, signed."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bots.email.inbound import ReplyAddresses, email_inbound_router, form_fields, new_text
from core.db.database import Database
from core.model import Author, Channel, Message
from tests.email.test_event_webhook import SIGNATURE, TIMESTAMP, Signer
from tests.relay.support import customer_with_ticket

ADDRESSES = ReplyAddresses.keyed("reply.careline.example", "a-secret-key-of-the-install")
CUSTOMER = "mia@example.org"

GMAIL = """Thanks, the refund arrived this morning.

Mia

On Tue, 1 Dec 2026 at 10:12, Careline Support <support@careline.example> wrote:
> Grace Hopper replied on CR-1001:
> We refunded the second charge.
"""

OUTLOOK = """It is still not working, sorry.

________________________________
From: Careline Support <support@careline.example>
Sent: Tuesday, December 1, 2026 10:12
Subject: Grace Hopper replied on CR-1001
"""


def multipart(fields: dict[str, str], boundary: str = "xYzZY") -> tuple[bytes, str]:
    """A body as SendGrid's Inbound Parse posts it: multipart/form-data, one part a field."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def mail(ticket_id: int, text: str, sender: str = CUSTOMER, **extra: str) -> dict[str, str]:
    to = ADDRESSES.for_ticket(ticket_id)
    return {
        "headers": f"Message-ID: <{uuid.uuid4()}@mail.example.org>\nSubject: Re: CR",
        "from": f"Mia Example <{sender}>",
        "to": to,
        "subject": "Re: Grace Hopper replied on CR-1001",
        "text": text,
        "envelope": json.dumps({"to": [to], "from": sender}),
        **extra,
    }


def signed(signer: Signer, body: bytes, content_type: str, age: int = 0) -> dict[str, str]:
    stamp = str(int(time.time()) - age)
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = signer.key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        SIGNATURE: base64.b64encode(signature).decode(),
        TIMESTAMP: stamp,
        "Content-Type": content_type,
    }


def client(db: Database, signer: Signer | None, addresses: Any = ADDRESSES) -> httpx.AsyncClient:
    app = FastAPI()
    key = signer.public_key if signer else None
    app.include_router(email_inbound_router(db, lambda: addresses, key))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def customer_messages(db: Database, ticket_id: int) -> list[tuple[str, Channel]]:
    async with db.uow() as uow:
        timeline = await uow.tickets.timeline(ticket_id)
    return [
        (m.body, m.channel)
        for m in timeline
        if isinstance(m, Message) and m.author == Author.CUSTOMER
    ][1:]  # after the description


async def test_a_signed_reply_from_the_customer_joins_the_ticket_without_the_quote(
    db: Database,
) -> None:
    _, ticket_id, _ = await customer_with_ticket(db, "mia", email=CUSTOMER)
    signer = Signer()
    body, content_type = multipart(mail(ticket_id, GMAIL))
    async with client(db, signer) as http:
        answer = await http.post("/sendgrid/inbound", content=body,
                                 headers=signed(signer, body, content_type))  # fmt: skip
        again = await http.post("/sendgrid/inbound", content=body,
                                headers=signed(signer, body, content_type))  # fmt: skip
    assert answer.status_code == 200 and again.status_code == 200
    assert await customer_messages(db, ticket_id) == [
        ("Thanks, the refund arrived this morning.\n\nMia", Channel.EMAIL)
    ]  # once: SendGrid's retry of the same Message-ID is a no-op


@pytest.mark.parametrize(
    "forgery", ["unsigned", "wrong key", "stale", "body changed"], ids=lambda f: f.replace(" ", "-")
)
async def test_unsigned_forged_or_stale_posts_are_refused(db: Database, forgery: str) -> None:
    _, ticket_id, _ = await customer_with_ticket(db, "mia", email=CUSTOMER)
    signer = Signer()
    body, content_type = multipart(mail(ticket_id, "Please call me"))
    headers = signed(Signer() if forgery == "wrong key" else signer, body, content_type,
                     age=3600 if forgery == "stale" else 0)  # fmt: skip
    if forgery == "unsigned":
        headers = {"Content-Type": content_type}
    if forgery == "body changed":
        body = body.replace(b"Please call me", b"Close my account")
    async with client(db, signer) as http:
        answer = await http.post("/sendgrid/inbound", content=body, headers=headers)
    assert answer.status_code == 403
    assert await customer_messages(db, ticket_id) == []


async def test_a_reply_from_another_address_or_to_a_forged_address_is_ignored(
    db: Database,
) -> None:
    _, ticket_id, _ = await customer_with_ticket(db, "mia", email=CUSTOMER)
    signer = Signer()
    forged_to = ADDRESSES.for_ticket(ticket_id).replace("reply+", "reply+9").split("-")[0]
    mails = [
        mail(ticket_id, "I am Mia, honestly", sender="mallory@example.net"),
        mail(
            ticket_id,
            "Guessing",
            to=f"{forged_to}-0000000000@reply.careline.example",
            envelope="{}",
        ),
    ]
    async with client(db, signer) as http:
        for fields in mails:
            body, content_type = multipart(fields)
            answer = await http.post("/sendgrid/inbound", content=body,
                                     headers=signed(signer, body, content_type))  # fmt: skip
            assert answer.status_code == 200  # taken off SendGrid's hands, not retried
    assert await customer_messages(db, ticket_id) == []


async def test_without_a_reply_domain_or_key_nothing_is_received(db: Database) -> None:
    signer = Signer()
    body, content_type = multipart(mail(1, "hello"))
    headers = signed(signer, body, content_type)
    async with client(db, None) as http:
        assert (
            await http.post("/sendgrid/inbound", content=body, headers=headers)
        ).status_code == 503
    async with client(db, signer, addresses=None) as http:
        assert (
            await http.post("/sendgrid/inbound", content=body, headers=headers)
        ).status_code == 503


def test_reply_addresses_name_their_ticket_and_cannot_be_forged() -> None:
    address = ADDRESSES.for_ticket(1042)
    assert address.startswith("reply+1042-") and address.endswith("@reply.careline.example")
    assert ADDRESSES.ticket(address) == 1042
    assert ADDRESSES.ticket(address.upper()) == 1042  # mail servers may change the case
    assert ADDRESSES.ticket(address.replace("1042-", "1043-")) is None
    other_install = ReplyAddresses.keyed("reply.careline.example", "another-key")
    assert other_install.ticket(address) is None
    assert ADDRESSES.ticket(address.replace("careline.example", "evil.example")) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GMAIL, "Thanks, the refund arrived this morning.\n\nMia"),
        (OUTLOOK, "It is still not working, sorry."),
        ("Yes please\n\n-- \nMia Example\nCEO", "Yes please"),
        ("> only a quote\n> nothing new", ""),
        (
            "Fine now.\r\nOn Tue, 1 Dec 2026 at 10:12, Careline\r\n"
            "<support@x.example> wrote:\r\n> q",
            "Fine now.",
        ),
    ],
)
def test_the_quoted_history_is_dropped(text: str, words: str) -> None:
    assert new_text(text) == words


def test_form_fields_read_text_parts_and_skip_files() -> None:
    body, content_type = multipart({"text": "héllo", "subject": "Re: CR-1"})
    body = body.replace(
        b"--xYzZY--",
        b'--xYzZY\r\nContent-Disposition: form-data; name="attachment1"; filename="a.pdf"\r\n'
        b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\x00\xff\r\n--xYzZY--",
    )
    assert form_fields(content_type, body) == {"text": "héllo", "subject": "Re: CR-1"}
