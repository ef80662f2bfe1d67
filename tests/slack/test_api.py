"""Outbound pacing, rate limits, timeouts without double posts, and the customer channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.channels import PermanentFailure, RetryLater, Unreachable
from bots.slack import SlackApi, SlackChannel
from bots.slack import blocks as kit
from core.db.database import Database
from dialogs.turn import Choice, Reply
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


def client(fake: FakeSlack, timeout: int = 5) -> AsyncWebClient:
    return AsyncWebClient(
        token="xoxb-test", base_url=f"{fake.url}/api/", timeout=timeout, retry_handlers=[]
    )


async def test_posts_to_one_channel_are_paced_but_channels_do_not_wait(fake: FakeSlack) -> None:
    api = SlackApi(client(fake), interval=0.25)
    started = time.perf_counter()
    await asyncio.gather(*(api.post("C1", f"m{i}", kit.note_blocks(f"m{i}")) for i in range(3)))
    paced = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(api.post(f"C{i}", "x", kit.note_blocks("x")) for i in range(2, 6)))
    parallel = time.perf_counter() - started
    assert paced >= 0.5
    assert parallel < 0.25
    fake.assert_no_violations()


async def test_short_rate_limit_is_waited_out(fake: FakeSlack) -> None:
    fake.fail_rate_limited("chat.postMessage", retry_after=1)
    api = SlackApi(client(fake), interval=0.0)
    started = time.perf_counter()
    ts = await api.post("C1", "hello", kit.note_blocks("hello"))
    assert time.perf_counter() - started >= 1.0
    assert ts and [c.status for c in fake.calls_to("chat.postMessage")] == [429, 200]


async def test_long_rate_limit_is_handed_to_the_relay(fake: FakeSlack) -> None:
    fake.fail_rate_limited("chat.postMessage", retry_after=30)
    api = SlackApi(client(fake), interval=0.0)
    with pytest.raises(RetryLater) as raised:
        await api.post("C1", "hello", kit.note_blocks("hello"))
    assert raised.value.seconds == 30
    assert len(fake.calls_to("chat.postMessage")) == 1


async def test_timed_out_post_is_found_again_instead_of_posted_twice(
    fake: FakeSlack, db: Database
) -> None:
    api = SlackApi(client(fake, timeout=1), db=db, interval=0.0)
    root = await api.post("C1", "root", kit.note_blocks("root"))
    fake.delay("chat.postMessage", 1.5)  # Slack is slow but does post the message
    with pytest.raises(RetryLater):
        await api.post("C1", "note", kit.note_blocks("note", "m-1"), thread_ts=root, marker="m-1")
    await asyncio.sleep(0.8)  # the slow post lands meanwhile
    again = await api.post(
        "C1", "note", kit.note_blocks("note", "m-1"), thread_ts=root, marker="m-1"
    )
    notes = [p for p in fake.posted("C1") if p.get("thread_ts") == root]
    assert len(notes) == 1
    assert (("C1", again)) in fake.messages


async def test_timed_out_root_post_is_not_repeated_when_slack_cannot_say(
    fake: FakeSlack, db: Database
) -> None:
    api = SlackApi(client(fake, timeout=1), db=db, interval=0.0)
    fake.delay("chat.postMessage", 1.5)
    fake.fail_server_error("conversations.history", times=2)
    with pytest.raises(RetryLater):
        await api.post("C1", "root", kit.note_blocks("root", "m-2"), marker="m-2")
    await asyncio.sleep(0.8)
    # Slack cannot say whether it is there: the desk refuses to guess (a visible dead letter).
    with pytest.raises(PermanentFailure, match="not posting again"):
        await api.post("C1", "root", kit.note_blocks("root", "m-2"), marker="m-2")
    assert len(fake.posted("C1")) == 1


async def test_unmarked_post_that_times_out_is_not_retried(fake: FakeSlack) -> None:
    api = SlackApi(client(fake, timeout=1), interval=0.0)
    fake.delay("chat.postMessage", 1.5)
    with pytest.raises(PermanentFailure, match="double post"):
        await api.post("C1", "hi", kit.note_blocks("hi"))
    await asyncio.sleep(0.8)
    assert len(fake.calls_to("chat.postMessage")) == 1


async def test_customer_channel_sends_choices_as_buttons(fake: FakeSlack) -> None:
    channel = SlackChannel(SlackApi(client(fake), interval=0.0))
    reply = Reply("Pick one", (Choice("Refund", "refund"), Choice("Talk to a person", "human")))
    ts = await channel.send("D0CUSTOM1", reply)
    [posted] = fake.posted("D0CUSTOM1")
    assert ("D0CUSTOM1", ts) in fake.messages
    assert posted["text"] == reply.as_plain_text()
    assert [e["value"] for e in posted["blocks"][1]["elements"]] == ["refund", "human"]
    fake.assert_no_violations()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"ok": False, "error": "ratelimited"}, RetryLater),
        (500, {"ok": False, "error": "fatal_error"}, RetryLater),
        (200, {"ok": False, "error": "channel_not_found"}, Unreachable),
        (200, {"ok": False, "error": "invalid_blocks"}, PermanentFailure),
    ],
)
async def test_customer_channel_maps_failures(
    fake: FakeSlack, status: int, body: dict[str, object], error: type[Exception]
) -> None:
    headers = {"Retry-After": "20"} if status == 429 else None
    fake.add_fault("chat.postMessage", status=status, body=body, headers=headers)
    channel = SlackChannel(SlackApi(client(fake), interval=0.0))
    with pytest.raises(error):
        await channel.send("D0CUSTOM1", Reply("hello"))


def test_note_rule_and_command_grammar() -> None:
    assert kit.split_note("note: internal") == (True, "internal")
    assert kit.split_note("  NOTE :  internal") == (True, "internal")
    assert kit.split_note("A note: this goes out") == (False, "A note: this goes out")
    assert kit.split_note("notes are here") == (False, "notes are here")
    command = kit.parse_command("assign cr-1042 <@U0BEN0001|ben>")
    assert (command.verb, command.reference, command.user_id) == ("assign", "CR-1042", "U0BEN0001")
    assert kit.parse_command("priority CR-1042 huge").problem
    assert kit.parse_command("frobnicate CR-1042").problem
    assert kit.parse_command("").verb == "help"
