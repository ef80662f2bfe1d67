"""Email verification and notify preference (core/contact.py) on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core import contact
from core.db import tables as t
from core.db.database import Database
from core.errors import InvalidInput
from core.model import Channel, Notify, utcnow
from tests.support.customers import register_customer


async def new_customer(db: Database) -> int:
    async with db.uow() as uow:
        customer, _ = await register_customer(
            uow, channel=Channel.WEBCHAT, external_id="v", chat_id="v"
        )
        await uow.commit()
    assert customer.id is not None
    return customer.id


async def test_requesting_a_code_records_the_event_the_relay_mails(db: Database) -> None:
    customer_id = await new_customer(db)
    async with db.uow() as uow:
        verification_id = await contact.request_email_verification(
            uow, customer_id, " Ada@Example.COM "
        )
        await uow.commit()
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(t.email_verifications))).mappings().one()
        event = (await conn.execute(select(t.outbox.c.event_type, t.outbox.c.payload))).one()
    assert row["email"] == "ada@example.com" and len(row["code"]) == 6 and row["code"].isdigit()
    assert event[0] == "EmailVerificationRequested"
    assert event[1] == {"customer_id": customer_id, "verification_id": verification_id}


async def test_right_code_verifies_the_address_wrong_codes_run_out(db: Database) -> None:
    customer_id = await new_customer(db)
    async with db.uow() as uow:
        await contact.request_email_verification(uow, customer_id, "a@b.co", code="424242")
        results = [
            await contact.confirm_email_verification(uow, customer_id, "111111", max_attempts=2),
            await contact.confirm_email_verification(uow, customer_id, "222222", max_attempts=2),
            await contact.confirm_email_verification(uow, customer_id, "424242", max_attempts=2),
        ]
        await uow.commit()
    assert [r.check for r in results] == ["wrong", "wrong", "expired"]
    async with db.uow() as uow:
        await contact.request_email_verification(uow, customer_id, "a@b.co", code="131313")
        ok = await contact.confirm_email_verification(uow, customer_id, "131 313")
        await uow.commit()
    assert ok.check == contact.CodeCheck.VERIFIED
    async with db.uow() as uow:
        customer = await uow.customers.get(customer_id)
        assert customer is not None and customer.email == "a@b.co" and customer.can_receive_email


async def test_expired_code_is_refused(db: Database) -> None:
    customer_id = await new_customer(db)
    async with db.uow() as uow:
        await contact.request_email_verification(
            uow, customer_id, "a@b.co", code="424242", now=utcnow() - timedelta(hours=1)
        )
        result = await contact.confirm_email_verification(uow, customer_id, "424242")
    assert result.check == contact.CodeCheck.EXPIRED


async def test_codes_are_rate_limited_and_bad_addresses_refused(db: Database) -> None:
    customer_id = await new_customer(db)
    async with db.uow() as uow:
        with pytest.raises(InvalidInput):
            await contact.request_email_verification(uow, customer_id, "not-an-address")
        for _ in range(contact.MAX_REQUESTS_PER_HOUR):
            await contact.request_email_verification(uow, customer_id, "a@b.co")
        with pytest.raises(InvalidInput, match="too many"):
            await contact.request_email_verification(uow, customer_id, "a@b.co")


async def test_notify_preference_and_forgetting_codes(db: Database) -> None:
    customer_id = await new_customer(db)
    async with db.uow() as uow:
        await contact.request_email_verification(uow, customer_id, "a@b.co")
        await contact.set_notify_preference(uow, customer_id, "email")
        await contact.forget_email_verifications(uow, customer_id)
        await uow.commit()
    async with db.uow() as uow:
        customer = await uow.customers.get(customer_id)
        assert customer is not None and customer.notify == Notify.EMAIL
        assert await uow.email_verifications.latest_pending(customer_id) is None
