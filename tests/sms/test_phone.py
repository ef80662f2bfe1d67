"""A customer of another chat confirms a phone number by a texted code and gets every
update by text too; STOP from that phone turns the texts off."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Agent, Channel
from tests.fakes.twilio_api import FakeTwilio, text_in
from tests.server.support import ServerThread, free_port, running
from tests.sms.conftest import sms_settings
from tests.support.customers import customer_with_ticket
from tests.support.waiting import wait_for

PHONE = "+14155550188"


class Visitor:
    """A web-chat customer over the HTTP fallback."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        token = self.http.post("/chat/api/session").json()["token"]
        self.http.headers["X-Careline-Visitor"] = token
        self.visitor: str | None = None

    def bot_says(self) -> list[str]:
        lines = self.http.get("/chat/api/messages", params={"after": 0}).json()["lines"]
        return [str(x["text"]) for x in lines if x["direction"] == "out"]

    def say(self, text: str, expect: str) -> str:
        seen = len(self.bot_says())
        assert self.http.post("/chat/api/messages", json={"text": text}).status_code == 200
        found = wait_for(
            lambda: next((x for x in self.bot_says()[seen:] if expect.lower() in x.lower()), None),
            20,
        )
        assert found, f"no {expect!r} after {text!r}: {self.bot_says()[seen:]}"
        return str(found)


@pytest.fixture
def server(db: Database, twilio: FakeTwilio) -> Iterator[ServerThread]:
    port = free_port()
    settings = sms_settings(db, twilio, public_url=f"http://127.0.0.1:{port}", auto_assign=False)
    with running(settings, port=port) as running_server:  # the real dialog engine
        yield running_server


async def _customer(db: Database) -> dict[str, Any]:
    c = t.customers.c
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(c.id, c.phone, c.phone_verified, c.texts))).one()
    return dict(row._mapping)


async def test_a_web_chat_customer_gets_updates_by_text_too(
    server: ServerThread, twilio: FakeTwilio, db: Database
) -> None:
    web = await asyncio.to_thread(Visitor, server.url)
    await asyncio.to_thread(web.say, "/phone", "mobile number")
    await asyncio.to_thread(web.say, "call me maybe", "doesn't look like a mobile number")
    london_landline = "+44 20 7946 0018"
    await asyncio.to_thread(web.say, london_landline, "doesn't look like a mobile number")
    await asyncio.to_thread(web.say, "(415) 555-0188", f"texted a 6-digit code to {PHONE}")
    [code_text] = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(PHONE), 15)
    code = re.search(r"\b(\d{6})\b", code_text)
    assert code and "expires in 15 minutes" in code_text, code_text
    await asyncio.to_thread(web.say, "000000", "doesn't match")
    await asyncio.to_thread(web.say, code.group(1), f"{PHONE} is confirmed")
    customer = await _customer(db)
    assert (customer["phone"], customer["phone_verified"], customer["texts"]) == (PHONE, True, True)

    # A ticket step reaches the web chat and the phone.
    async with db.uow() as uow:
        ticket = await services.open_ticket(
            uow,
            customer_id=customer["id"],
            description="The parcel never came",
            category="delivery",
            channel=Channel.WEBCHAT,
        )
        agent = await uow.agents.add(Agent(name="Grace Hopper", email="grace@example.com"))
        await uow.commit()
    assert ticket.id is not None and agent.id is not None
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket.id, agent.id)
        await uow.commit()
    texted = await asyncio.to_thread(
        wait_for, lambda: [x for x in twilio.texts_to(PHONE) if "Grace Hopper" in x], 15
    )
    assert texted == [f"Grace Hopper from our team is now looking after {ticket.reference}."]

    # STOP from the phone: no more texts, the chat goes on.
    assert (await asyncio.to_thread(text_in, server.url, PHONE, "STOP")).status_code == 200
    await asyncio.to_thread(wait_for, lambda: False, 1.0)
    assert (await _customer(db))["texts"] is False
    async with db.uow() as uow:
        await services.resolve_ticket(uow, ticket.id)
        await uow.commit()
    await asyncio.to_thread(wait_for, lambda: any("is resolved" in x for x in web.bot_says()), 15)
    await asyncio.sleep(0.5)
    assert not any("resolved" in x for x in twilio.texts_to(PHONE))
    twilio.assert_no_violations()


async def test_phone_in_an_sms_chat_and_without_twilio(
    db: Database, twilio: FakeTwilio, server: ServerThread
) -> None:
    assert (await asyncio.to_thread(text_in, server.url, PHONE, "/phone")).status_code == 200
    answer = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(PHONE), 15)
    assert answer == ["You're texting us already: every update comes here by text."]


async def _verified_phone_customer(db: Database) -> tuple[int, int]:
    """A web-chat customer whose phone is confirmed and who asked for texts; a ticket."""
    async with db.uow() as uow:
        customer, ticket = await customer_with_ticket(
            uow,
            channel=Channel.WEBCHAT,
            external_id="visitor-1",
            description="The parcel never came",
            category="delivery",
        )
        customer.phone, customer.phone_verified, customer.texts = PHONE, True, True
        agent = await uow.agents.add(Agent(name="Grace Hopper", email="grace@example.com"))
        await uow.commit()
    assert ticket.id is not None and agent.id is not None
    return ticket.id, agent.id


async def test_a_phone_reported_unknown_gets_no_more_texts(
    server: ServerThread, twilio: FakeTwilio, db: Database
) -> None:
    twilio.undeliverable[PHONE] = 30005  # unknown handset
    ticket_id, agent_id = await _verified_phone_customer(db)
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, agent_id)
        await uow.commit()
    await asyncio.to_thread(wait_for, lambda: len(twilio.reports) == 2, 15)
    await asyncio.to_thread(wait_for, lambda: False, 0.5)
    assert (await _customer(db))["texts"] is False


async def test_phone_again_stops_the_texts(
    server: ServerThread, twilio: FakeTwilio, db: Database
) -> None:
    web = await asyncio.to_thread(Visitor, server.url)
    await asyncio.to_thread(web.say, "hello", "assistant")
    c = t.customers.c
    confirmed = {"phone": PHONE, "phone_verified": True, "texts": True}
    async with db.engine.begin() as conn:  # as a confirmed code leaves it
        await conn.execute(t.customers.update().values(**confirmed))
    await asyncio.to_thread(web.say, "/phone", f"Updates also go by text to {PHONE}")
    lines = web.http.get("/chat/api/messages", params={"after": 0}).json()["lines"]
    assert [x["label"] for x in lines[-1]["choices"]] == ["Stop the texts", "Change the number"]
    await asyncio.to_thread(web.say, "Stop the texts", "no more texts")
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(c.texts)) is False
