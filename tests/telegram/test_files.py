"""A customer's Telegram file is a real file: fetched once (getFile, then the file) into
Careline's file store before the turn, named but not kept when it is not a kind we keep, and
waited for (Telegram redelivers) while Telegram does not hand it over."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from core.db import tables as t
from core.db.database import Database
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import TelegramUpdates
from tests.telegram.conftest import ScriptedEngine, StartServer, post_update

PDF = b"%PDF-1.5\n% electricity bill, March\n"


async def stored(db: Database) -> list[tuple[str, str, bytes, str]]:
    f = t.stored_files.c
    async with db.engine.connect() as conn:
        rows = await conn.execute(select(f.id, f.name, f.content, f.owner))
        return [(str(a), str(b), bytes(c), str(d)) for a, b, c, d in rows]


async def test_a_document_is_stored_once_however_often_it_is_delivered(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    fake.add_file("BQAC-doc-1", PDF)
    first, second = updates.document(file_name="bill.pdf"), updates.document("bill.pdf")
    with serve() as server:
        assert (await post_update(client, server, first)).status_code == 200
        assert (await post_update(client, server, second)).status_code == 200  # same file
    [(stored_id, name, content, owner)] = await stored(db)
    assert (name, content, owner) == ("bill.pdf", PDF, "telegram:1001")
    for turn in engine.turns:
        [attachment] = turn.attachments
        assert attachment.stored_id == stored_id and attachment.file_id == "BQAC-doc-1"
        assert attachment.size == len(PDF) and attachment.mime_type == "application/pdf"
    assert len(fake.calls_to("getFile")) == 1  # the second time it was already kept
    fake.assert_no_violations()


async def test_a_file_that_is_not_what_it_claims_is_named_but_not_kept(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    fake.add_file("BQAC-doc-1", b"MZ\x90\x00 a program")
    with serve() as server:
        await post_update(client, server, updates.document(file_name="bill.pdf"))
    [attachment] = engine.turns[0].attachments
    assert attachment.name == "bill.pdf" and attachment.stored_id is None
    assert await stored(db) == []


async def test_while_telegram_does_not_hand_the_file_over_the_update_is_retried(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    fake.add_file("AwAC-voice-1", b"OggS\x00\x02" + b"\x00" * 40)
    fake.add_fault("getFile", status=502, body={"ok": False, "error_code": 502}, times=1)
    update = updates.voice()
    with serve() as server:
        failed = await post_update(client, server, update)
        assert failed.status_code == 500 and engine.turns == []  # Telegram will redeliver
        again = await post_update(client, server, update)
        assert again.status_code == 200
    [turn] = engine.turns
    [attachment] = turn.attachments
    assert attachment.kind == "voice" and attachment.mime_type == "audio/ogg"
    assert attachment.stored_id is not None
    assert [row[3] for row in await stored(db)] == ["telegram:1001"]


async def test_after_a_few_tries_the_message_goes_on_without_its_file(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
) -> None:
    fake.add_fault("getFile", status=502, body={"ok": False, "error_code": 502}, times=10)
    update = updates.photo(caption="the broken screen")
    with serve() as server:
        answers = [(await post_update(client, server, update)).status_code for _ in range(3)]
    assert answers == [500, 500, 200]
    [turn] = engine.turns
    assert turn.text == "the broken screen"
    assert (
        turn.attachments[0].file_id == "AgAC-photo-1280" and turn.attachments[0].stored_id is None
    )
