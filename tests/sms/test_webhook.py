"""Texts in and out through the running server: signatures, the inbox, order, keywords."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow
from dialogs.turn import Reply
from tests.fakes.twilio_api import SUPPORT_NUMBER, FakeTwilio, text_in
from tests.sms.conftest import CUSTOMER, StartServer
from tests.support.waiting import wait_for
from tests.telegram.conftest import ScriptedEngine

pytestmark = pytest.mark.usefixtures("db")


def test_a_text_is_answered_by_text(serve: StartServer, twilio: FakeTwilio) -> None:
    with serve() as server:
        answer = text_in(server.url, CUSTOMER, "hello there")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
        assert "<Response" in answer.text
        assert wait_for(lambda: twilio.texts_to(CUSTOMER)) == ["You said: hello there"]
    twilio.assert_no_violations()


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
def test_a_text_without_a_right_signature_is_refused(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine, signature: str
) -> None:
    with serve() as server:
        answer = text_in(server.url, CUSTOMER, "let me in", signature=signature)
        assert answer.status_code == 403
    assert engine.turns == []
    assert twilio.texts == []


def test_a_signature_for_another_url_is_refused(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    with serve() as server:
        forged = text_in(server.url, CUSTOMER, "hi", signed_url="https://evil.example/twilio/sms")
        assert forged.status_code == 403
        signed_with_another_token = text_in(server.url, CUSTOMER, "hi", auth_token="x" * 32)
        assert signed_with_another_token.status_code == 403
    assert engine.turns == []


def test_twilios_retry_of_a_text_is_answered_once(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    with serve() as server:
        for _ in range(3):
            assert text_in(server.url, CUSTOMER, "once", sid="SM" + "1" * 32).status_code == 200
        assert wait_for(lambda: twilio.texts_to(CUSTOMER))
        asyncio.run(asyncio.sleep(0.5))
    assert twilio.texts_to(CUSTOMER) == ["You said: once"]
    assert [said.text for said in engine.turns] == ["once"]


def test_a_number_is_answered_in_the_order_it_wrote(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    engine.delay = 0.1
    with serve() as server:
        for n in range(5):
            text_in(server.url, CUSTOMER, f"message {n}")
        wait_for(lambda: len(twilio.texts_to(CUSTOMER)) == 5)
    assert twilio.texts_to(CUSTOMER) == [f"You said: message {n}" for n in range(5)]
    spans = [span for span in engine.spans if span[0] == CUSTOMER]
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(spans)), "turns overlapped"


def test_choices_are_numbered_and_a_number_picks_one(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    with serve() as server:
        text_in(server.url, CUSTOMER, "/start")
        menu = wait_for(lambda: twilio.texts_to(CUSTOMER))
        assert menu == ["Hello <there> & welcome\n\n1. Open a ticket\n2. Ticket status"]
        text_in(server.url, CUSTOMER, " 2 ")
        wait_for(lambda: len(twilio.texts_to(CUSTOMER)) == 2)
    picked = engine.turns[-1]
    assert picked.choice == "status" and picked.text == "Ticket status"


def test_a_long_reply_goes_as_several_texts_within_the_segment_cap(
    serve: StartServer, twilio: FakeTwilio
) -> None:
    with serve(sms_max_segments=6) as server:
        text_in(server.url, CUSTOMER, "long")
        texts = wait_for(lambda: twilio.texts_to(CUSTOMER))
        asyncio.run(asyncio.sleep(0.5))
        texts = twilio.texts_to(CUSTOMER)
    assert len(texts) == 2
    assert all(len(text) <= 4 * 153 for text in texts)
    assert len(texts[0]) > 3 * 153 and len(texts[1]) <= 2 * 153
    assert texts[-1].endswith("...")  # the ~11 segments' reply was cut at 6
    twilio.assert_no_violations()


async def _left_by_a_crash(db: Database, sid: str, payload: dict[str, object]) -> None:
    """An inbox row as a process killed mid-text leaves it: pending, its claim run out."""
    long_ago = utcnow() - timedelta(minutes=5)
    async with db.engine.begin() as conn:
        await conn.execute(
            t.inbox.insert().values(
                source="twilio",
                key=sid,
                status="pending",
                payload=payload,
                received_at=long_ago,
                attempts=1,
                claimed_until=long_ago,
            )
        )


def _form(sid: str, body: str) -> dict[str, str]:
    return {"MessageSid": sid, "From": CUSTOMER, "To": SUPPORT_NUMBER, "Body": body}


async def test_a_text_a_crash_left_unanswered_is_taken_up_again(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine, db: Database
) -> None:
    await _left_by_a_crash(db, "SM" + "7" * 32, {"form": _form("SM" + "7" * 32, "lost?")})
    with serve():
        texts = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 20)
    assert texts == ["You said: lost?"]
    async with db.engine.connect() as conn:
        status = await conn.scalar(select(t.inbox.c.status).where(t.inbox.c.key == "SM" + "7" * 32))
    assert status == "done"


async def test_after_a_crash_only_the_replies_not_yet_sent_go(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine, db: Database
) -> None:
    sid = "SM" + "8" * 32
    replies = [Reply("first").to_json(), Reply("second").to_json()]
    await _left_by_a_crash(db, sid, {"form": _form(sid, "two"), "replies": replies, "sent": 1})
    with serve():
        texts = await asyncio.to_thread(wait_for, lambda: twilio.texts_to(CUSTOMER), 20)
        await asyncio.sleep(0.5)
    assert texts == ["second"]  # "first" went out before the crash
    assert engine.turns == []  # the turn had committed: it does not run again


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_a_photo_sent_by_mms_is_kept_with_the_text(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    url = twilio.add_media(PNG, "image/png")
    elsewhere = "http://198.51.100.7/2010-04-01/evil.png"  # not Twilio's host: never fetched
    with serve() as server:
        media = ((url, "image/png"), (elsewhere, "image/png"))
        assert text_in(server.url, CUSTOMER, "my broken screen", media=media).status_code == 200
        assert wait_for(lambda: twilio.texts_to(CUSTOMER))
    [said] = engine.turns
    kept, named = said.attachments
    assert (kept.kind, kept.mime_type, kept.size) == ("photo", "image/png", len(PNG))
    assert kept.stored_id is not None
    assert named.stored_id is None and named.kind == "photo"
    assert [c.status for c in twilio.calls_to("media.get")] == [200]


def test_a_photo_twilio_does_not_hand_over_is_tried_again(
    serve: StartServer, twilio: FakeTwilio, engine: ScriptedEngine
) -> None:
    url = twilio.add_media(PNG, "image/png")
    twilio.add_fault("media.get", status=503, body={"code": 20500}, times=1)
    with serve() as server:
        text_in(server.url, CUSTOMER, "photo", media=((url, "image/png"),))
        assert wait_for(lambda: twilio.texts_to(CUSTOMER), 20) == ["You said: photo"]
    [said] = engine.turns  # the turn ran once, after the file came
    assert said.attachments[0].stored_id is not None
    assert [c.status for c in twilio.calls_to("media.get")] == [503, 200]
