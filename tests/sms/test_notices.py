"""Ticket notices reach an SMS customer by text; Twilio's delivery reports are acted on."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from core import services
from core.db import tables as t
from core.db.database import Database
from core.model import Agent, Channel, Notify
from tests.fakes.twilio_api import FakeTwilio, text_in
from tests.sms.conftest import CUSTOMER, StartServer
from tests.support.customers import customer_with_ticket
from tests.support.waiting import wait_for

EMAIL = "sam.sms@example.com"


async def _ticket_for_sms_customer(db: Database, notify: Notify) -> tuple[int, int]:
    async with db.uow() as uow:
        customer, ticket = await customer_with_ticket(
            uow,
            channel=Channel.SMS,
            external_id=CUSTOMER,
            description="My phone line is dead",
            category="telecom",
            display_name="Sam",
        )
        customer.email, customer.email_verified, customer.notify = EMAIL, True, notify
        agent = await uow.agents.add(Agent(name="Grace Hopper", email="grace@example.com"))
        await uow.commit()
    assert ticket.id is not None and agent.id is not None
    return ticket.id, agent.id


async def _assign(db: Database, ticket_id: int, agent_id: int) -> None:
    async with db.uow() as uow:
        await services.assign_ticket(uow, ticket_id, agent_id)
        await uow.commit()


def _mails(folder: Path) -> list[str]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes())
        found.append(str(message["Subject"]))
    return found


async def test_an_assignment_is_texted_to_an_sms_customer(
    serve: StartServer, twilio: FakeTwilio, db: Database, tmp_path: Path
) -> None:
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.CHAT)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False):
        await _assign(db, ticket_id, agent_id)
        texts = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER))
        await asyncio.sleep(0.5)
    assert len(texts) == 1 and "Grace Hopper" in texts[0]
    assert _mails(tmp_path) == []  # delivered: no email instead
    twilio.assert_no_violations()


@pytest.mark.parametrize(("code", "unreachable"), [(30006, True), (30003, False)])
async def test_an_undelivered_text_is_told_by_email_instead(
    serve: StartServer,
    twilio: FakeTwilio,
    db: Database,
    tmp_path: Path,
    code: int,
    unreachable: bool,
) -> None:
    twilio.undeliverable[CUSTOMER] = code  # 30006: a landline; 30003: the phone is off
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.CHAT)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False):
        await _assign(db, ticket_id, agent_id)
        mails = await asyncio.to_thread(wait_for, lambda: _mails(tmp_path), 15)
        await asyncio.sleep(0.5)
    assert len(mails) == 1 and "Grace Hopper" in mails[0], mails
    assert [r["answer"] for r in twilio.reports] == [204, 204]  # sent, undelivered
    ci, d = t.channel_identities.c, t.outbox_deliveries.c
    async with db.engine.connect() as conn:
        reachable = (
            await conn.execute(select(ci.reachable).where(ci.external_id == CUSTOMER))
        ).scalar_one()
        reported = (
            await conn.execute(select(d.last_error).where(d.handler == "customer_chat"))
        ).scalar_one()
    assert reachable is not unreachable
    assert reported == f"sms undelivered (Twilio error {code})"


async def test_a_repeated_report_sends_one_email(
    serve: StartServer, twilio: FakeTwilio, db: Database, tmp_path: Path
) -> None:
    twilio.undeliverable[CUSTOMER] = 30003
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.CHAT)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False) as server:
        await _assign(db, ticket_id, agent_id)
        await asyncio.to_thread(wait_for, lambda: _mails(tmp_path), 15)
        [report] = [r for r in twilio.reports if r["MessageStatus"] == "undelivered"]
        form = {k: v for k, v in report.items() if k != "answer"}
        url = f"{server.url}/twilio/status?kind=sms"
        signature = twilio.validator.compute_signature(url, form)
        again = httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})
        assert again.status_code == 204
        unsigned = httpx.post(url, data=form)
        assert unsigned.status_code == 403
        await asyncio.sleep(1.0)
    assert len(_mails(tmp_path)) == 1


async def test_a_customer_who_chose_both_gets_no_second_email(
    serve: StartServer, twilio: FakeTwilio, db: Database, tmp_path: Path
) -> None:
    twilio.undeliverable[CUSTOMER] = 30003
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.BOTH)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False):
        await _assign(db, ticket_id, agent_id)
        await asyncio.to_thread(wait_for, lambda: len(twilio.reports) == 2, 15)
        await asyncio.sleep(1.0)
    # The email notices they get anyway, and no second one about the assignment.
    assert sorted(_mails(tmp_path)) == [
        "Grace Hopper is looking after CR-1001",
        "We have your request: CR-1001",
    ]


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (503, 20500)])
async def test_twilio_busy_or_down_is_retried_and_the_notice_texted_once(
    serve: StartServer, twilio: FakeTwilio, db: Database, tmp_path: Path, status: int, code: int
) -> None:
    body = {"code": code, "message": "busy", "status": status}
    twilio.add_fault("messages.create", status=status, body=body, times=2)
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.CHAT)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False):
        await _assign(db, ticket_id, agent_id)
        texts = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 30)
        await asyncio.sleep(0.5)
    assert len(texts) == 1 and "Grace Hopper" in texts[0]
    tries = [c.status for c in twilio.calls_to("messages.create")]
    assert tries == [status, status, 201]
    assert _mails(tmp_path) == []  # a busy Twilio is not an unreachable number


async def test_stop_sends_the_notices_by_email_and_start_by_text_again(
    serve: StartServer, twilio: FakeTwilio, db: Database, tmp_path: Path
) -> None:
    ticket_id, agent_id = await _ticket_for_sms_customer(db, Notify.CHAT)
    with serve(mailbox_dir=str(tmp_path), auto_assign=False) as server:
        assert (await asyncio.to_thread(text_in, server.url, CUSTOMER, "Stop")).status_code == 200
        await asyncio.to_thread(wait_for, lambda: False, 0.5)
        await _assign(db, ticket_id, agent_id)
        mails = await asyncio.to_thread(wait_for, lambda: _mails(tmp_path), 15)
        assert len(mails) == 1 and "Grace Hopper" in mails[0]
        assert twilio.texts_to(CUSTOMER) == []  # an opted-out number gets nothing
        assert (await asyncio.to_thread(text_in, server.url, CUSTOMER, "START")).status_code == 200
        await asyncio.to_thread(wait_for, lambda: False, 0.5)
        async with db.uow() as uow:
            await services.resolve_ticket(uow, ticket_id)
            await uow.commit()
        texts = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 15)
        await asyncio.sleep(0.5)
    assert len(texts) == 1 and "is resolved" in texts[0]
    assert len(_mails(tmp_path)) == 1  # texts again, and the customer still chose chat only
    c = t.customers.c
    async with db.engine.connect() as conn:
        assert await conn.scalar(select(c.notify)) == Notify.CHAT
