"""End to end: real Update JSON posted to the running server; the fake Bot API checks calls."""

from __future__ import annotations

import asyncio
import html
import itertools

import httpx
import pytest

from core.db.database import Database
from core.model import Channel
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_updates import Person, TelegramUpdates
from tests.support.customers import register_customer
from tests.support.statements import statements_run
from tests.telegram.conftest import (
    RecordingEngine,
    ScriptedEngine,
    StartServer,
    inbox_row,
    post_update,
    run_answer,
)


async def test_update_without_secret_is_refused_and_not_processed(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine, db: Database
) -> None:
    with serve() as server:
        update = updates.text("hello")
        missing = await post_update(client, server, update, secret=None)
        wrong = await post_update(client, server, update, secret="not-the-secret")
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert engine.turns == []
    assert await inbox_row(db, update) is None


@pytest.mark.parametrize("engine", ["general", "in_turn"], indirect=True)
async def test_text_is_answered_in_the_webhook_answer_as_escaped_html(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    with serve() as server:
        response = await post_update(client, server, updates.text("my card <was> charged"))
    assert response.status_code == 200
    body = response.json()
    assert body["method"] == "sendMessage"
    assert body["chat_id"] == 1001
    assert body["parse_mode"] == "HTML"
    assert body["text"] == "You said: my card &lt;was&gt; charged"
    said = engine.turns[0]
    assert (said.channel, said.user_id, said.chat_id) == (Channel.TELEGRAM, "1001", "1001")
    assert said.display_name == "Dana Customer"
    await run_answer(client, fake, body)
    # Telegram shows the text without markup: the escaping survived the HTML parser.
    assert [m["text"] for m in fake.messages.values()] == ["You said: my card <was> charged"]
    fake.assert_no_violations()


async def test_choices_become_an_inline_keyboard_sent_through_the_api(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, fake: FakeTelegram
) -> None:
    with serve(telegram_reply_in_webhook_answer=False) as server:
        response = await post_update(client, server, updates.command("start"))
    assert response.status_code == 200
    assert response.content == b""
    [call] = fake.calls_to("sendMessage")
    assert call.params["text"] == html.escape("Hello <there> & welcome", quote=False)
    keyboard = call.params["reply_markup"]["inline_keyboard"]
    assert [[b["callback_data"] for b in row] for row in keyboard] == [["new"], ["status"]]
    fake.assert_no_violations()


@pytest.mark.parametrize("engine", ["general", "in_turn"], indirect=True)
async def test_a_redelivery_has_no_second_effect(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    update = updates.text("hello")
    with serve(telegram_reply_in_webhook_answer=False) as server:
        first = await post_update(client, server, update)
        again = await post_update(client, server, update)
    assert (first.status_code, again.status_code) == (200, 200)
    # The general way runs no second turn; in the turn, the redelivery's turn finds the
    # delivery finished when it records it, and rolls back.
    assert engine.answered == 1
    assert fake.sent_texts() == ["You said: hello"]
    row = await inbox_row(db, update)
    assert row is not None and row["status"] == "done"


@pytest.mark.parametrize("engine", ["in_turn"], indirect=True)
async def test_a_turn_keeps_its_replies_to_send_in_its_own_commit(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded in the turn, the replies to send through the Bot API are kept by the turn's
    own transaction: the inbox's separate `answered` write is never needed."""
    from core.db.inbox import SqlInbox

    async def separate_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("the replies were kept in a transaction of their own")

    monkeypatch.setattr(SqlInbox, "answered", separate_write)
    update = updates.text("two")
    with serve(telegram_reply_in_webhook_answer=False) as server:
        response = await post_update(client, server, update)
    assert response.status_code == 200
    assert engine.answered == 1
    assert fake.sent_texts() == ["first", "second"]
    row = await inbox_row(db, update)
    assert row is not None and row["status"] == "done"


@pytest.mark.parametrize("engine", ["in_turn"], indirect=True)
async def test_a_turn_writes_its_inbox_record_in_one_statement(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    """Recorded in the turn, an update's inbox row is written by one statement at the
    turn's end (with the replies to send), then marked done by one more once they are sent.
    That the record comes before the send: the test of a stored reply sent again."""
    async with statements_run(db) as seen:
        with serve(telegram_reply_in_webhook_answer=False) as server:
            response = await post_update(client, server, updates.text("two"))
    assert response.status_code == 200
    assert (seen["INSERT", "inbox"], seen["UPDATE", "inbox"]) == (1, 1)
    assert fake.sent_texts() == ["first", "second"]


@pytest.mark.parametrize("engine", ["general", "in_turn"], indirect=True)
async def test_stored_reply_is_sent_again_when_it_did_not_go_out(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
    db: Database,
) -> None:
    update = updates.text("hello")
    fake.fail_server_error("sendMessage", times=1)
    with serve(telegram_reply_in_webhook_answer=False) as server:
        first = await post_update(client, server, update)
        row = await inbox_row(db, update)
        again = await post_update(client, server, update)
    assert first.status_code == 500  # Telegram will deliver the update again
    assert row is not None and row["status"] == "answered"
    assert again.status_code == 200
    assert engine.answered == 1  # the turn has no second effect
    assert fake.sent_texts() == ["You said: hello"]


@pytest.mark.parametrize("engine", ["general", "in_turn"], indirect=True)
async def test_failed_turn_answers_500_and_succeeds_on_redelivery(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    db: Database,
) -> None:
    engine.fail = 1
    update = updates.text("hello")
    with serve() as server:
        first = await post_update(client, server, update)
        second = await post_update(client, server, update)
    assert first.status_code == 500
    assert second.status_code == 200
    assert second.json()["text"] == "You said: hello"
    row = await inbox_row(db, update)
    assert row is not None and row["attempts"] == 2  # the failed attempt counted, once
    assert (len(engine.turns), engine.answered) == (2, 1)


@pytest.mark.parametrize("engine", ["general", "in_turn"], indirect=True)
async def test_update_that_keeps_failing_is_parked_with_its_reason(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    db: Database,
) -> None:
    engine.fail = 100
    update = updates.text("hello")
    with serve(telegram_max_attempts=2) as server:
        answers = [(await post_update(client, server, update)).status_code for _ in range(4)]
    # The general way records a delivery before its turn: it parks the delivery after the
    # last attempt without running it. In the turn, the record comes at the turn's end: the
    # last failure parks it, and a later copy runs its turn again, to no effect.
    if isinstance(engine, RecordingEngine):
        assert (answers, len(engine.turns)) == ([500, 200, 200, 200], 4)
    else:
        assert (answers, len(engine.turns)) == ([500, 500, 200, 200], 2)
    assert engine.answered == 0
    row = await inbox_row(db, update)
    assert row is not None and row["status"] == "parked"
    assert "gave up after 2 attempts" in row["error"]
    assert row["payload"]["update"]["update_id"] == update["update_id"]


async def test_callback_query_is_answered_and_reaches_the_engine_as_a_choice(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    engine: ScriptedEngine,
    fake: FakeTelegram,
) -> None:
    tap = updates.callback_query(
        "status", buttons=[[("Open a ticket", "new"), ("Ticket status", "status")]]
    )
    with serve() as server:
        response = await post_update(client, server, tap)
    assert response.status_code == 200
    [answered] = fake.calls_to("answerCallbackQuery")
    assert answered.params["callback_query_id"] == tap["callback_query"]["id"]
    said = engine.turns[0]
    assert (said.choice, said.text, said.chat_id) == ("status", "Ticket status", "1001")
    fake.assert_no_violations()


async def test_photo_keeps_the_largest_size_by_file_id(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    with serve() as server:
        await post_update(client, server, updates.photo(caption="the broken screen"))
        await post_update(client, server, updates.voice())
    photo, voice = engine.turns
    assert photo.text == "the broken screen"
    assert [(a.kind, a.file_id) for a in photo.attachments] == [("photo", "AgAC-photo-1280")]
    assert [(a.kind, a.file_id, a.mime_type) for a in voice.attachments] == [
        ("voice", "AwAC-voice-1", "audio/ogg")
    ]
    assert "token" not in repr(engine.turns).lower()


async def test_file_over_20_mb_gets_a_clear_message_and_no_turn(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    update = updates.document()
    update["message"]["document"]["file_size"] = 25 * 1024 * 1024
    with serve() as server:
        response = await post_update(client, server, update)
    assert engine.turns == []
    assert "too large" in response.json()["text"]
    assert "20 MB" in response.json()["text"]


async def test_edited_message_is_a_new_turn_marked_edited(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    with serve() as server:
        await post_update(client, server, updates.text("my parcel is late"))
        await post_update(client, server, updates.edited_message("my parcel is lost", message_id=1))
    original, edit = engine.turns
    assert (original.edited, edit.edited) == (False, True)
    assert edit.text == "my parcel is lost"
    assert original.message_id != edit.message_id
    assert edit.message_id is not None and edit.message_id.startswith("1001:1:edit:")


async def test_sticker_and_location_get_a_polite_answer(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    with serve() as server:
        sticker = await post_update(client, server, updates.sticker())
        location = await post_update(client, server, updates.location())
    assert engine.turns == []
    for response in (sticker, location):
        assert "can't read that kind of message" in response.json()["text"]


async def test_group_chat_answers_only_mentions_and_commands_with_a_private_chat_note(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    with serve() as server:
        chatter = await post_update(client, server, updates.group_text("anyone here?"))
        mention = await post_update(client, server, updates.group_text("@careline_test_bot help"))
        command = await post_update(client, server, updates.group_text("/help@careline_test_bot"))
        other_bot = await post_update(client, server, updates.group_text("/help@other_bot"))
    assert engine.turns == []
    assert chatter.content == b"" and other_bot.content == b""
    for response in (mention, command):
        body = response.json()
        assert body["chat_id"] == -4_000_000_123
        assert "private chat" in body["text"] and "t.me/careline_test_bot" in body["text"]


async def test_blocked_user_is_marked_unreachable(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    fake: FakeTelegram,
    db: Database,
) -> None:
    async with db.uow() as uow:
        await register_customer(uow, channel=Channel.TELEGRAM, external_id="1001", chat_id="1001")
        await uow.commit()
    fake.fail_blocked("sendMessage", chat_id=1001)
    with serve(telegram_reply_in_webhook_answer=False) as server:
        response = await post_update(client, server, updates.text("hello"))
    assert response.status_code == 200  # retrying cannot help
    async with db.uow() as uow:
        identity = await uow.customers.identity(Channel.TELEGRAM, "1001")
    assert identity is not None and identity.reachable is False


async def test_blocking_the_bot_marks_unreachable_and_unblocking_reachable(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, db: Database
) -> None:
    async with db.uow() as uow:
        await register_customer(uow, channel=Channel.TELEGRAM, external_id="1001", chat_id="1001")
        await uow.commit()
    blocked = updates.bot_blocked()
    with serve() as server:
        await post_update(client, server, blocked)
        async with db.uow() as uow:
            after_block = await uow.customers.identity(Channel.TELEGRAM, "1001")
        unblocked = updates.bot_blocked()
        unblocked["my_chat_member"]["new_chat_member"] = {
            "status": "member",
            "user": updates.bot,
        }
        await post_update(client, server, unblocked)
    async with db.uow() as uow:
        after_unblock = await uow.customers.identity(Channel.TELEGRAM, "1001")
    assert after_block is not None and after_block.reachable is False
    assert after_unblock is not None and after_unblock.reachable is True


async def test_rate_limit_is_honoured_and_the_reply_still_arrives(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, fake: FakeTelegram
) -> None:
    fake.fail_retry_after("sendMessage", 1)
    with serve(telegram_reply_in_webhook_answer=False) as server:
        response = await post_update(client, server, updates.text("hello"))
        metrics = (await client.get(f"{server.url}/metrics")).text
    attempts = fake.calls_to("sendMessage")
    assert response.status_code == 200
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[1].at - attempts[0].at >= 1.0
    assert 'careline_platform_rate_limited_total{platform="telegram"} 1.0' in metrics


async def test_long_reply_is_split_below_4096_characters(
    serve: StartServer,
    client: httpx.AsyncClient,
    updates: TelegramUpdates,
    fake: FakeTelegram,
) -> None:
    with serve() as server:
        response = await post_update(client, server, updates.text("long"))
    assert response.status_code == 200
    texts = fake.sent_texts(1001)
    assert len(texts) == 3  # too long for the webhook answer: all through the API
    assert all(len(text) <= 4096 for text in texts)
    assert sum(len(text.split()) for text in texts) == 30 * 3 * 20
    fake.assert_no_violations()


async def test_updates_of_one_chat_run_in_order_and_other_chats_concurrently(
    serve: StartServer, client: httpx.AsyncClient, updates: TelegramUpdates, engine: ScriptedEngine
) -> None:
    engine.delay = 0.2
    dana, eli = Person(), Person(id=2002, first_name="Eli")
    batch = [updates.text(f"dana {i}", dana) for i in range(3)]
    batch += [updates.text(f"eli {i}", eli) for i in range(3)]
    with serve() as server:

        async def post_later(update: dict, delay: float) -> httpx.Response:
            await asyncio.sleep(delay)  # arrival order per chat, as Telegram sends them
            return await post_update(client, server, update)

        results = await asyncio.gather(
            *(post_later(u, 0.05 * (i % 3)) for i, u in enumerate(batch))
        )
    assert all(r.status_code == 200 for r in results)
    for chat in ("1001", "2002"):
        spans = sorted((s, e) for c, s, e in engine.spans if c == chat)
        assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans))
    dana_spans = [(s, e) for c, s, e in engine.spans if c == "1001"]
    eli_spans = [(s, e) for c, s, e in engine.spans if c == "2002"]
    assert any(s1 < e2 and s2 < e1 for s1, e1 in dana_spans for s2, e2 in eli_spans)
    assert [t.text for t in engine.turns if t.chat_id == "1001"] == ["dana 0", "dana 1", "dana 2"]
