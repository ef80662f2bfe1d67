"""TelegramChannel (what the relay uses) and message rendering, with PTB against the fake."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import AsyncIterator

import pytest
from telegram.warnings import PTBUserWarning

from bots.channels import OutgoingFile, PermanentFailure, RetryLater, Unreachable
from bots.metrics import Metrics
from bots.telegram import CarelineRateLimiter, TelegramChannel, build_application, split_message
from core.config import Settings
from dialogs.turn import Choice, Reply
from tests.fakes.telegram_api import FakeTelegram
from tests.telegram.conftest import TOKEN


@pytest.fixture
async def channel(fake: FakeTelegram) -> AsyncIterator[TelegramChannel]:
    settings = Settings(telegram_bot_token=TOKEN, telegram_api_base_url=f"{fake.url}/bot")
    metrics = Metrics()
    limiter = CarelineRateLimiter(metrics=metrics, max_retries=0, chat_per_second=100)
    blocked: list[str] = []

    async def on_unreachable(chat_id: str) -> None:
        blocked.append(chat_id)

    async with build_application(settings, limiter) as application:
        ch = TelegramChannel(application.bot, metrics, on_unreachable)
        ch.blocked = blocked  # type: ignore[attr-defined]
        yield ch


async def test_send_returns_the_provider_message_id(channel: TelegramChannel, fake: FakeTelegram):
    first = await channel.send("1001", Reply("Your ticket CR-1042 is open."))
    second = await channel.send("1001", Reply("An agent replied & asks: <why>?"))
    assert (first, second) == ("1", "2")
    fake.assert_no_violations()


async def test_a_text_goes_out_without_a_warning(fake: FakeTelegram) -> None:
    """Texts go through `do_api_request` on purpose: the channel silences PTB's advice to
    use `send_message` for them, and only that."""
    settings = Settings(telegram_bot_token=TOKEN, telegram_api_base_url=f"{fake.url}/bot")
    async with build_application(settings) as application:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            channel = TelegramChannel(application.bot, Metrics())
            assert await channel.send("1001", Reply("hello")) == "1"
            await application.bot.do_api_request("getMe")  # other advice still shows
    advice = [str(w.message) for w in caught if issubclass(w.category, PTBUserWarning)]
    assert advice == ["Please use 'Bot.getMe' instead of 'Bot.do_api_request(\"getMe\", ...)'"]


async def test_blocked_chat_raises_unreachable_and_reports_it(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    fake.fail_blocked(chat_id=1001)
    with pytest.raises(Unreachable):
        await channel.send("1001", Reply("hello"))
    assert channel.blocked == ["1001"]  # type: ignore[attr-defined]


async def test_rate_limit_beyond_retries_asks_to_retry_later(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    fake.fail_retry_after("sendMessage", 7)
    with pytest.raises(RetryLater) as caught:
        await channel.send("1001", Reply("hello"))
    assert caught.value.seconds == 7


async def test_server_error_asks_to_retry_and_bad_request_is_permanent(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    fake.fail_server_error("sendMessage")
    with pytest.raises(RetryLater):
        await channel.send("1001", Reply("hello"))
    fake.add_fault(
        "sendMessage",
        status=400,
        body={"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
    )
    with pytest.raises(PermanentFailure):
        await channel.send("1001", Reply("hello"))


async def test_choices_too_long_for_buttons_fall_back_to_numbered_text(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    long_value = "x" * 80
    await channel.send("1001", Reply("Pick one", (Choice("A", long_value), Choice("B", "b"))))
    [call] = fake.calls_to("sendMessage")
    assert "reply_markup" not in call.params
    assert call.params["text"] == "Pick one\n\n1. A\n2. B"
    fake.assert_no_violations()


def test_split_message_cuts_at_line_breaks_and_counts_utf16() -> None:
    text = "\n".join(["a" * 3000, "b" * 3000, "c" * 10])
    assert split_message(text) == ["a" * 3000, "b" * 3000 + "\n" + "c" * 10]
    emoji = "😀" * 3000  # two UTF-16 units each
    pieces = split_message(emoji)
    assert [len(p) for p in pieces] == [2048, 952]
    assert split_message("short") == ["short"]


async def test_a_file_goes_as_a_document_and_a_photo_as_a_photo(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    pdf = b"%PDF-1.4\n% refund\n"
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    caption = "Anna <Berg> sent you a file: refund.pdf"
    document_id = await channel.send_file(
        "1001", OutgoingFile("refund.pdf", "application/pdf", pdf, caption)
    )
    photo_id = await channel.send_file("1001", OutgoingFile("meter.jpg", "image/jpeg", jpeg))
    assert (document_id, photo_id) == ("1", "2")
    [document] = [c.params for c in fake.calls_to("sendDocument") if c.status == 200]
    assert document["document"]["upload"] == "refund.pdf"
    assert document["document"]["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert document["caption"] == "Anna &lt;Berg&gt; sent you a file: refund.pdf"
    assert document["parse_mode"] == "HTML"
    [photo] = [c.params for c in fake.calls_to("sendPhoto") if c.status == 200]
    assert photo["photo"]["sha256"] == hashlib.sha256(jpeg).hexdigest()
    assert "caption" not in photo
    fake.assert_no_violations()


async def test_a_file_to_a_blocked_chat_raises_unreachable(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    fake.fail_blocked(chat_id=1001)
    with pytest.raises(Unreachable):
        await channel.send_file("1001", OutgoingFile("a.pdf", "application/pdf", b"%PDF-1.4"))


@pytest.mark.parametrize("as_timedelta", [False, True])
def test_retry_after_is_read_in_seconds_whichever_type_ptb_gives(
    as_timedelta: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telegram.error import RetryAfter

    from bots.telegram.limits import retry_seconds

    # PTB 22 gives an int and warns; with PTB_TIMEDELTA (its next major's default) a timedelta.
    monkeypatch.setenv("PTB_TIMEDELTA", "true" if as_timedelta else "false")
    assert retry_seconds(RetryAfter(7)) == 7.0
