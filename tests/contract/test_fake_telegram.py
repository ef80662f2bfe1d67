"""The fake Telegram Bot API, driven by the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, RetryAfter

from tests.fakes.contracts import spawn
from tests.fakes.telegram_api import FakeTelegram, check_object, deliver_update
from tests.fakes.telegram_updates import TelegramUpdates

TOKEN = "123456:TEST-token_abc"


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot") as b:
        yield b


def test_fake_starts_and_stops_quickly() -> None:
    FakeTelegram().load_contracts()  # read once per process, before the fake listens
    started = time.perf_counter()
    server = FakeTelegram().start()
    starting = time.perf_counter() - started
    assert httpx.get(f"{server.url}/_fake/calls").json() == []
    started = time.perf_counter()
    server.stop()
    assert starting + time.perf_counter() - started < 0.3


async def test_valid_calls_pass_without_violations(fake: FakeTelegram, bot: Bot) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="solved:yes")]])
    sent = await bot.send_message(
        42, "<b>Ticket</b> CR-1042 opened", parse_mode="HTML", reply_markup=keyboard
    )
    await bot.edit_message_reply_markup(chat_id=42, message_id=sent.message_id)
    edited = await bot.edit_message_text("Closed", chat_id=42, message_id=sent.message_id)
    await bot.send_chat_action(42, "typing")
    await bot.answer_callback_query("123", text="Thanks!")
    await bot.set_webhook("https://example.test/hook", secret_token="s3cret")
    info = await bot.get_webhook_info()
    data = await (await bot.get_file("BQAC-doc-1")).download_as_bytearray()

    assert sent.text == "Ticket CR-1042 opened"
    assert sent.from_user is not None and sent.from_user.is_bot
    assert isinstance(edited, type(sent)) and edited.text == "Closed"
    assert info.url == "https://example.test/hook"
    assert data
    fake.assert_no_violations()
    assert [c.method for c in fake.calls][:2] == ["getMe", "sendMessage"]


async def test_message_ids_increase_per_chat(bot: Bot) -> None:
    ids = [(await bot.send_message(chat, "hi")).message_id for chat in (1, 1, 2)]
    assert ids == [1, 2, 1]


async def test_unknown_parameter_is_rejected_and_recorded(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)unknown parameter"):
        await bot.send_message(42, "hi", api_kwargs={"colour": "red"})
    assert [v.problem for v in fake.violations] == ["unknown parameter colour"]


async def test_missing_required_parameter_is_rejected(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="text is required"):
        await bot._post("sendMessage", {"chat_id": 42})
    assert fake.violations[0].method == "sendMessage"


@pytest.mark.parametrize(
    ("text", "options", "problem"),
    [
        ("x" * 4097, {}, "too long"),
        ("   ", {}, "empty"),
        ("<b>open", {"parse_mode": "HTML"}, "end tag"),
        ("<div>no</div>", {"parse_mode": "HTML"}, "Unsupported"),
        ("fish & chips", {"parse_mode": "HTML"}, "entity"),
        ("Ticket CR-1042.", {"parse_mode": "MarkdownV2"}, "reserved"),
        ("hi", {"parse_mode": "html5"}, "parse_mode"),
    ],
)
async def test_telegram_limits_are_enforced(
    fake: FakeTelegram, bot: Bot, text: str, options: dict[str, str], problem: str
) -> None:
    with pytest.raises(BadRequest, match=f"(?i){problem}"):
        await bot.send_message(42, text, **options)  # type: ignore[arg-type]
    assert fake.violations


async def test_wrong_type_inside_keyboard_is_rejected(fake: FakeTelegram, bot: Bot) -> None:
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "a" * 65}]]}
    with pytest.raises(BadRequest, match="callback_data"):
        await bot._post("sendMessage", {"chat_id": 1, "text": "x", "reply_markup": markup})
    bad_field = {"inline_keyboard": [[{"text": "Yes", "callback": "x"}]]}
    with pytest.raises(BadRequest, match="unknown field"):
        await bot._post("sendMessage", {"chat_id": 1, "text": "x", "reply_markup": bad_field})


async def test_long_callback_answer_is_rejected(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="200"):
        await bot.answer_callback_query("1", text="x" * 201)


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_rate_limit_surfaces_as_retry_after(fake: FakeTelegram, bot: Bot) -> None:
    fake.fail_retry_after("sendMessage", 7)
    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(42, "hi")
    assert raised.value.retry_after in (7, dt.timedelta(seconds=7))
    await bot.send_message(42, "hi again")  # the fault was for one call only


async def test_blocked_user_surfaces_as_forbidden_for_that_chat_only(
    fake: FakeTelegram, bot: Bot
) -> None:
    fake.fail_blocked(chat_id=5)
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(5, "hi")
    await bot.send_message(6, "hi")
    assert fake.sent_texts(6) == ["hi"]


async def test_slow_answer_hits_the_client_timeout(fake: FakeTelegram, bot: Bot) -> None:
    from telegram.error import TimedOut

    fake.delay("sendMessage", 1.0)
    with pytest.raises(TimedOut):
        await bot.send_message(42, "hi", read_timeout=0.2)


async def test_polling_serves_pushed_updates_and_honours_offset(
    fake: FakeTelegram, bot: Bot
) -> None:
    updates = TelegramUpdates()
    first, second = updates.text("one"), updates.text("two")
    fake.push_update(first)
    got = await bot.get_updates(timeout=1)
    assert [u.update_id for u in got] == [first["update_id"]]

    async def push_later() -> None:
        await asyncio.sleep(0.1)
        fake.push_update(second)

    pusher = asyncio.create_task(push_later())
    started = time.perf_counter()
    got = await bot.get_updates(offset=first["update_id"] + 1, timeout=5)
    await pusher
    assert [u.message.text for u in got if u.message] == ["two"]
    assert time.perf_counter() - started < 2
    assert fake.pending_updates == [second]


async def test_webhook_delivery_carries_the_secret_and_retries_until_ok(
    fake: FakeTelegram, bot: Bot
) -> None:
    answers = [500, 500, 200]
    seen: list[str | None] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        return web.Response(status=answers.pop(0))

    receiver = FakeTelegram()
    receiver.routes = lambda app: app.router.add_post("/hook", hook)  # type: ignore[method-assign,assignment]
    with receiver:
        await bot.set_webhook(f"{receiver.url}/hook", secret_token="s3cret")
        response = await fake.deliver(
            TelegramUpdates().text("hi"), retry_until_ok=True, interval=0.01
        )
        assert response.status_code == 200
    assert seen == ["s3cret"] * 3
    with pytest.raises(httpx.TransportError):
        await deliver_update(f"{receiver.url}/hook", {"update_id": 1})


FACTORY = TelegramUpdates()
KINDS = {
    "text": FACTORY.text("my card was charged twice"),
    "command": FACTORY.command("start", "ref42"),
    "callback": FACTORY.callback_query("ticket:CR-1042:close"),
    "photo": FACTORY.photo("receipt"),
    "document": FACTORY.document(),
    "voice": FACTORY.voice(),
    "sticker": FACTORY.sticker(),
    "location": FACTORY.location(),
    "edited": FACTORY.edited_message("fixed typo"),
    "group": FACTORY.group_text("hello all"),
    "supergroup": FACTORY.group_text("hello all", supergroup=True),
    "blocked": FACTORY.bot_blocked(),
}


@pytest.mark.parametrize("kind", KINDS)
def test_factory_updates_fit_the_contract_and_parse(kind: str) -> None:
    update = KINDS[kind]
    assert check_object(update, "Update") == []
    parsed = Update.de_json(update, None)
    assert parsed.update_id == update["update_id"]
    assert parsed.effective_user is not None


def test_factory_update_kinds_parse_to_the_right_objects() -> None:
    command = Update.de_json(KINDS["command"], None)
    assert command.message is not None and command.message.text == "/start ref42"
    assert command.message.entities[0].type == "bot_command"
    tapped = Update.de_json(KINDS["callback"], None).callback_query
    assert tapped is not None and tapped.data == "ticket:CR-1042:close"
    photo = Update.de_json(KINDS["photo"], None).message
    assert photo is not None and len(photo.photo) == 4
    blocked = Update.de_json(KINDS["blocked"], None).my_chat_member
    assert blocked is not None and blocked.new_chat_member.status == "kicked"


def test_unknown_update_kind_is_flagged_by_the_contract_but_parses() -> None:
    update = TelegramUpdates().unknown()
    assert check_object(update, "Update") == ["future_update_kind: unknown field of Update"]
    assert Update.de_json(update, None).effective_message is None


def test_update_ids_increase() -> None:
    updates = TelegramUpdates(first_update_id=10)
    assert [updates.text("a")["update_id"], updates.text("b")["update_id"]] == [10, 11]


def test_contract_checker_rejects_a_broken_update() -> None:
    broken = TelegramUpdates().text("hi")
    del broken["message"]["chat"]
    broken["message"]["date"] = "yesterday"
    problems = check_object(broken, "Update")
    assert "message.chat: field required in Message" in problems
    assert "message.date: must be Integer" in problems


def test_subprocess_mode_serves_the_same_api() -> None:
    with spawn("tests.fakes.telegram_api") as (_, url):
        me = httpx.post(f"{url}/bot{TOKEN}/getMe").json()
        assert me["result"]["is_bot"] is True
        bad = httpx.post(f"{url}/bot{TOKEN}/sendMessage", data={"chat_id": "1"})
        assert bad.status_code == 400
        assert bad.json()["description"] == "Bad Request: parameter text is required"
        httpx.post(f"{url}/_fake/updates", json={"update_id": 3})
        assert httpx.post(f"{url}/bot{TOKEN}/getUpdates", json={}).json()["result"] == [
            {"update_id": 3}
        ]
        assert len(httpx.get(f"{url}/_fake/violations").json()) == 1
