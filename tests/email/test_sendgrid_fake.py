"""The SendGrid fake checks what it receives against SendGrid's published OpenAPI."""

from __future__ import annotations

import dataclasses

import pytest

from bots.channels import PermanentFailure
from bots.email import Email
from bots.email.sendgrid_mail import SendGridEmail
from tests.fakes.sendgrid_api import SendGridFake

MAIL = Email(
    to="mia@example.org",
    subject="CR-1001 is resolved",
    text="Resolved.",
    html="<p>Resolved.</p>",
    category="resolved",
    key="careline-7-customer_email",
)


async def test_a_valid_mail_is_accepted_and_kept_whole() -> None:
    with SendGridFake() as fake:
        sender = SendGridEmail("SG.k", host=fake.url, sender="support@careline.example")
        provider_id = await sender.send(MAIL)
        [call] = fake.calls
        fake.assert_no_violations()
    assert provider_id == call.result_id
    assert call.params["subject"] == "CR-1001 is resolved"
    assert call.params["personalizations"][0]["to"] == [{"email": "mia@example.org"}]


async def test_a_mail_that_breaks_the_contract_is_a_violation() -> None:
    with SendGridFake() as fake:
        sender = SendGridEmail("SG.k", host=fake.url, sender="not an address")
        with pytest.raises(PermanentFailure, match="SendGrid 400"):
            await sender.send(MAIL)
        assert [v.method for v in fake.violations] == ["mail.send"]


async def test_a_mail_with_its_own_reply_to_says_so() -> None:
    with SendGridFake() as fake:
        sender = SendGridEmail(
            "SG.k", host=fake.url, sender="support@careline.example", reply_to="help@x.example"
        )
        await sender.send(MAIL)
        await sender.send(dataclasses.replace(MAIL, reply_to="reply+7-abc@reply.x.example"))
        first, second = fake.calls
        fake.assert_no_violations()
    assert first.params["reply_to"] == {"email": "help@x.example"}
    assert second.params["reply_to"] == {"email": "reply+7-abc@reply.x.example"}
