"""Calls about urgent news: opted in by text with /calls, never in quiet hours."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from bots.sms.calls import is_quiet, quiet_hours, spoken_reference
from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Channel, Priority
from tests.fakes.twilio_api import FakeTwilio, text_in
from tests.server.support import free_port, running
from tests.sms.conftest import CUSTOMER, sms_settings
from tests.support.customers import customer_with_ticket
from tests.support.waiting import wait_for

LOS_ANGELES = "+14155550123"  # America/Los_Angeles: UTC-8 in December


@pytest.mark.parametrize(
    ("utc_hour", "quiet"),
    [(4, False), (5, True), (15, True), (16, False), (20, False)],  # 21:00-08:00 in LA
)
def test_quiet_hours_are_the_numbers_local_night(utc_hour: int, quiet: bool) -> None:
    now = datetime(2026, 12, 4, utc_hour, 30, tzinfo=UTC)
    assert is_quiet(LOS_ANGELES, now, quiet_hours("21-8")) is quiet


def test_quiet_hours_are_checked_in_every_zone_of_the_number() -> None:
    spain = "+34600000000"  # Madrid or the Canaries, an hour apart
    at_21_in_madrid = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)
    assert is_quiet(spain, at_21_in_madrid, quiet_hours("21-8"))
    assert not is_quiet(spain, at_21_in_madrid, quiet_hours("22-8"))
    with pytest.raises(ValueError, match="0-24"):
        quiet_hours("21-30")


def test_a_reference_is_read_out_sign_by_sign() -> None:
    assert spoken_reference("CR-1042") == "C R 1 0 4 2"


async def _urgent_ticket_resolved(db: Database, priority: Priority = Priority.URGENT) -> None:
    async with db.uow() as uow:
        _, ticket = await customer_with_ticket(
            uow,
            channel=Channel.SMS,
            external_id=CUSTOMER,
            description="No dial tone on the hospital line",
            category="telecom",
            priority=priority,
        )
        await uow.commit()
    assert ticket.id is not None
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket.id)
        await uow.commit()


async def _calls_opt_in(db: Database) -> bool:
    c, ci = t.customers.c, t.channel_identities.c
    async with db.engine.connect() as conn:
        return bool(
            await conn.scalar(
                select(c.calls)
                .join(t.channel_identities, ci.customer_id == c.id)
                .where(ci.external_id == CUSTOMER)
            )
        )


@pytest.mark.parametrize("quiet", ["0-0", "0-24"])
async def test_an_opted_in_customer_is_called_when_an_urgent_ticket_is_resolved(
    db: Database, twilio: FakeTwilio, quiet: str
) -> None:
    port = free_port()
    settings = sms_settings(
        db, twilio, public_url=f"http://127.0.0.1:{port}", call_quiet_hours=quiet
    )
    with running(settings, port=port) as server:  # the real dialog engine
        await asyncio.to_thread(text_in, server.url, CUSTOMER, "/calls")
        asked = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 30)
        assert asked and "call this number" in asked[0] and "1. Yes, call me" in asked[0]
        await asyncio.to_thread(text_in, server.url, CUSTOMER, "1")
        await asyncio.to_thread(wait_for, lambda: len(twilio.texts_to(CUSTOMER)) == 2, 30)
        assert "we'll call this number" in twilio.texts_to(CUSTOMER)[1]
        assert await _calls_opt_in(db)
        await _urgent_ticket_resolved(db)
        await asyncio.to_thread(
            wait_for, lambda: any("resolved" in x for x in twilio.texts_to(CUSTOMER)), 30
        )
        await asyncio.sleep(1.0)
    if quiet == "0-24":  # always quiet: the text alone tells them
        assert twilio.calls_made == []
        return
    [call] = twilio.calls_made
    assert call["To"] == CUSTOMER and call["From"] == settings.twilio_from_number
    assert '<Say language="en-US">' in call["Twiml"] and "C R 1 0 0 1" in call["Twiml"]
    assert call["StatusCallback"] == f"{settings.public_url}/twilio/status?kind=call"
    twilio.assert_no_violations()


async def _call_report(db: Database) -> str | None:
    d = t.outbox_deliveries.c
    async with db.engine.connect() as conn:
        return await conn.scalar(select(d.last_error).where(d.handler == "customer_call"))


async def test_a_call_nobody_answered_is_written_on_its_record(
    db: Database, twilio: FakeTwilio
) -> None:
    port = free_port()
    settings = sms_settings(
        db, twilio, public_url=f"http://127.0.0.1:{port}", call_quiet_hours="0-0"
    )
    with running(settings, port=port) as server:
        await asyncio.to_thread(text_in, server.url, CUSTOMER, "/calls")
        await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 30)
        await asyncio.to_thread(text_in, server.url, CUSTOMER, "1")
        await asyncio.to_thread(wait_for, lambda: len(twilio.texts_to(CUSTOMER)) == 2, 30)
        await _urgent_ticket_resolved(db)
        [call] = await asyncio.to_thread(wait_for, lambda: twilio.calls_made, 30)
        url = f"{server.url}/twilio/status?kind=call"
        form = {"CallSid": call["Sid"], "CallStatus": "no-answer", "To": CUSTOMER}
        signature = twilio.validator.compute_signature(url, form)
        answer = await asyncio.to_thread(
            httpx.post, url, data=form, headers={"X-Twilio-Signature": signature}
        )
        assert answer.status_code == 204
    assert await _call_report(db) == "call no-answer"


async def test_no_call_without_opting_in_or_for_a_normal_ticket(
    db: Database, twilio: FakeTwilio
) -> None:
    port = free_port()
    settings = sms_settings(
        db, twilio, public_url=f"http://127.0.0.1:{port}", call_quiet_hours="0-0"
    )
    with running(settings, port=port):
        await _urgent_ticket_resolved(db)  # not opted in
        await asyncio.to_thread(
            wait_for, lambda: any("resolved" in x for x in twilio.texts_to(CUSTOMER)), 30
        )
        await asyncio.sleep(1.0)
    assert twilio.calls_made == []
