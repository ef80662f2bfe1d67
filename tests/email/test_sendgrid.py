"""The real `sendgrid` library against Prism (the published contract) and a faulty fake."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bots.channels import PermanentFailure, RetryLater
from bots.email import Email, EmailAttachment, LocalMailbox, build_email
from bots.email.sendgrid_mail import SendGridEmail
from bots.notices import CustomerNotices
from bots.relay import Handlers, Relay, RetryPolicy
from core.config import Settings
from core.db.database import Database
from core.model import Channel
from tests.fakes.prism import CONTRACTS, prism_fixture
from tests.relay.support import CollectingChannel, customer_with_ticket, outbox_rows
from tests.support.aiohttp_app import served

prism_sendgrid = prism_fixture(CONTRACTS / "sendgrid_mail_v3.json")

NOTICE = Email(
    to="mia@example.org",
    subject="We have your request: CR-1001",
    text="Thanks, we have your request.",
    html="<p>Thanks, we have your request.</p>",
    category="ticket_opened",
    key="careline-1-customer_email",
)


async def test_notice_email_is_accepted_by_the_sendgrid_contract(prism_sendgrid: str) -> None:
    sender = SendGridEmail(
        "SG.test-key",
        host=prism_sendgrid,
        sender="support@careline.example",
        reply_to="help@careline.example",
    )
    provider_id = await sender.send(NOTICE)
    assert isinstance(provider_id, str)


async def test_plain_text_only_email_is_accepted_by_the_sendgrid_contract(
    prism_sendgrid: str,
) -> None:
    sender = SendGridEmail("SG.test-key", host=prism_sendgrid, sender="support@careline.example")
    await sender.send(Email(to="leo@example.org", subject="Code", text="Your code is 123456"))


async def test_attachments_are_sent_as_the_contract_says(
    prism_sendgrid: str, flaky_sendgrid: tuple[FlakySendGrid, str]
) -> None:
    pdf = b"%PDF-1.4\n% refund\n"
    mail = Email(
        to="mia@example.org",
        subject="Anna replied on CR-1001",
        text="Attached: refund.pdf",
        attachments=(EmailAttachment("refund.pdf", "application/pdf", pdf),),
    )
    accepted = SendGridEmail("SG.test-key", host=prism_sendgrid, sender="support@careline.example")
    assert isinstance(await accepted.send(mail), str)  # the published contract takes it
    fake, url = flaky_sendgrid
    fake.script = []
    await SendGridEmail("SG.flaky", host=url, sender="support@careline.example").send(mail)
    [body] = fake.accepted
    assert body["attachments"] == [
        {
            "content": base64.b64encode(pdf).decode(),
            "filename": "refund.pdf",
            "type": "application/pdf",
            "disposition": "attachment",
        }
    ]


async def test_request_the_contract_rejects_is_a_permanent_failure(prism_sendgrid: str) -> None:
    # Proves the mock checks requests: a sender that is not an address breaks the spec.
    sender = SendGridEmail("SG.test-key", host=prism_sendgrid, sender="not an address")
    with pytest.raises(PermanentFailure, match="SendGrid 4"):
        await sender.send(NOTICE)


@dataclass
class FlakySendGrid:
    """Answers 429 (Retry-After), 500 and a too-slow response before it recovers."""

    script: list[str] = field(default_factory=lambda: ["429", "500", "slow"])
    accepted: list[dict[str, Any]] = field(default_factory=list)
    seen_at: list[float] = field(default_factory=list)
    retry_after: float = 0.3

    async def handle(self, request: web.Request) -> web.Response:
        self.seen_at.append(time.monotonic())
        assert request.headers["Authorization"] == "Bearer SG.flaky"
        body = await request.json()
        fault = self.script.pop(0) if self.script else None
        if fault == "429":
            return web.json_response(
                {"errors": [{"message": "too many requests"}]},
                status=429,
                headers={"Retry-After": str(self.retry_after)},
            )
        if fault == "500":
            return web.json_response({"errors": [{"message": "oops"}]}, status=500)
        if fault == "slow":
            await asyncio.sleep(2.0)  # longer than the client's timeout
        self.accepted.append(body)
        return web.Response(status=202, headers={"X-Message-Id": f"sg-{len(self.accepted)}"})


@pytest.fixture
async def flaky_sendgrid() -> AsyncIterator[tuple[FlakySendGrid, str]]:
    fake = FlakySendGrid()
    app = web.Application()
    app.router.add_post("/v3/mail/send", fake.handle)
    async with served(app) as url:
        yield fake, url


async def test_sendgrid_faults_map_to_retry_later_and_permanent_failure(
    flaky_sendgrid: tuple[FlakySendGrid, str],
) -> None:
    fake, url = flaky_sendgrid
    sender = SendGridEmail("SG.flaky", host=url, sender="support@careline.example", timeout=0.5)
    with pytest.raises(RetryLater) as rate_limited:
        await sender.send(NOTICE)
    assert rate_limited.value.seconds == pytest.approx(0.3)
    with pytest.raises(RetryLater, match="500"):
        await sender.send(NOTICE)
    with pytest.raises(RetryLater, match="did not answer"):
        await sender.send(NOTICE)
    assert (await sender.send(NOTICE)).startswith("sg-")  # recovered
    assert len(fake.seen_at) == 4


async def test_every_email_goes_out_after_sendgrid_recovers(
    db: Database, flaky_sendgrid: tuple[FlakySendGrid, str]
) -> None:
    fake, url = flaky_sendgrid
    fake.script = ["429", "500", "slow", "429", "500", "500"]
    sender = SendGridEmail("SG.flaky", host=url, sender="support@careline.example", timeout=0.5)
    handlers = Handlers()
    notices = CustomerNotices(db, channels={Channel.TELEGRAM: CollectingChannel()}, email=sender)
    notices.register(handlers)
    names = [f"c{n}" for n in range(8)]
    for name in names:
        await customer_with_ticket(db, name, email=f"{name}@example.org")
    relay = Relay(
        db,
        handlers,
        retry=RetryPolicy(base_seconds=0.05, max_seconds=0.2, max_attempts=10),
        poll_seconds=0.02,
        idle_seconds=0.05,
    )
    stop = asyncio.Event()
    runner = asyncio.create_task(relay.run(stop))
    try:
        for _ in range(400):
            rows = await outbox_rows(db)
            if all(r["status"] == "done" for r in rows.values()):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await runner

    recipients = sorted(
        p["to"][0]["email"] for body in fake.accepted for p in body["personalizations"]
    )
    # Each customer once, except the slow one: accepted late, after the client gave up
    # (the one message in flight when the timeout hit).
    assert sorted(set(recipients)) == sorted(f"{n}@example.org" for n in names)
    assert len(recipients) <= len(names) + 1
    assert all(r["status"] == "done" for r in (await outbox_rows(db)).values())


async def test_without_a_sendgrid_key_mail_lands_in_the_local_mailbox_and_log_has_no_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=str(tmp_path), email_reply_to="help@careline.example")
    sender = build_email(settings)
    assert isinstance(sender, LocalMailbox)
    with caplog.at_level(logging.INFO, logger="bots.email"):
        provider_id = await sender.send(NOTICE)

    [path] = (tmp_path / "mailbox").glob("*.eml")
    assert provider_id == f"local:{path.name}"
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "mia@example.org"
    assert parsed["Reply-To"] == "help@careline.example"
    assert isinstance(parsed, email.message.EmailMessage)
    assert parsed.get_body(("html",)) is not None
    assert f"mailbox: stored an email ({NOTICE.category.replace('_', ' ')}) as {path.name}" in (
        caplog.messages
    )
    assert "mia@example.org" not in caplog.text


def test_with_a_sendgrid_key_mail_goes_to_sendgrid() -> None:
    settings = Settings(SENDGRID_API_KEY="SG.x", SENDGRID_API_HOST="http://127.0.0.1:9")
    assert isinstance(build_email(settings), SendGridEmail)
