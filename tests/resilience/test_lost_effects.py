"""Failures between two writes of the real server: nothing may be lost or said twice.

Each test injects a real database fault (an SQLite trigger that aborts one kind of write)
into the running `careline serve`, lifts it, and checks what the customer finally got.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import httpx
import pytest

from resilience.harness import assign_as_opened
from resilience.procs import SECRET
from resilience.telegram_load import Sent
from tests.resilience.conftest import Running

pytestmark = pytest.mark.slow

_chats = itertools.count(7_300_000_001)
_updates = itertools.count(900_000_001)


def post(running: Running, sent: Sent) -> httpx.Response:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    return httpx.post(running.webhook, json=sent.body(), headers=headers, timeout=60)


def sends_to(running: Running, chat_id: int) -> list[str]:
    return [
        str(call["params"]["text"])
        for call in running.fake.calls()
        if call["method"] == "sendMessage"
        and call["status"] == 200
        and str(call["params"]["chat_id"]) == str(chat_id)
    ]


def wait_for(check: Any, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    return check()


def test_reply_is_not_lost_when_the_first_answer_never_reached_telegram(
    running: Running,
) -> None:
    """The turn commits and its reply rides in the webhook's answer, but that answer is lost
    (the process dies, or the connection drops) so Telegram delivers the update again. The
    redelivery must bring the same answer and no second effect. (Before the engine
    remembered its answers, a redelivery of a seen message got no answer at all.)"""
    chat = next(_chats)
    opening = Sent(next(_updates), chat, 1, "/human", opens_ticket=True)
    assert post(running, opening).status_code == 200
    sent = Sent(next(_updates), chat, 2, f"note {chat} for the agent", opens_ticket=False)
    first = post(running, sent)
    assert first.status_code == 200
    again = post(running, sent)  # Telegram never saw the first answer
    assert again.status_code == 200
    stored = running.sql(f"SELECT count(*) FROM messages WHERE body = '{sent.text}'")
    assert stored == [(1,)]  # the turn had its effect exactly once
    answer = again.json().get("text", "") if again.content else ""
    direct = [t for t in sends_to(running, chat) if "Added to" in t]
    assert "Added to" in answer or direct, "the redelivery got no answer"


def test_reply_is_not_lost_when_the_turn_fails_after_committing(running: Running) -> None:
    """The turn commits, then the request fails before answering (here: the inbox write
    that follows a multi-part reply is refused). Telegram redelivers; the customer still
    gets the answer, and the turn has one effect."""
    chat = next(_chats)
    sent = Sent(next(_updates), chat, 1, "/start", opens_ticket=False)
    running.sql(
        "CREATE TRIGGER fail_after_turn BEFORE UPDATE ON inbox "
        f"WHEN NEW.key = '{sent.update_id}' AND NEW.status IN ('answered', 'done') "
        "BEGIN SELECT RAISE(ABORT, 'injected: database went away'); END"
    )
    try:
        first = post(running, sent)
    finally:
        running.sql("DROP TRIGGER fail_after_turn")
    again = post(running, sent) if first.status_code >= 500 else first
    assert again.status_code == 200
    answer = again.json().get("text", "") if again.content else ""
    direct = sends_to(running, chat)
    assert answer or direct, "the customer never got an answer"


def test_sent_notice_is_recorded_done_when_a_bookkeeping_write_failed_once(
    running: Running,
) -> None:
    """bots/relay/bookkeeping.py `GroupJournal._flush_forever`: when a group commit fails,
    `_fail` wakes the waiters of `begins` and `settles` but drops `work.outcomes`, the `done`
    records of messages already sent. Those deliveries stay `sending` until the 60 s lease
    expires, and then the relay sends the notice again (seen as 12 of 12 notices duplicated
    in the suite's PostgreSQL-restart scenario)."""
    chat = next(_chats)
    sent = Sent(next(_updates), chat, 1, "/human", opens_ticket=True)
    assert post(running, sent).status_code == 200
    running.sql(
        "CREATE TRIGGER fail_done BEFORE UPDATE ON outbox_deliveries "
        "WHEN NEW.status = 'done' BEGIN SELECT RAISE(ABORT, 'injected: database went away'); END"
    )
    try:
        asyncio.run(assign_as_opened(running.url, lambda: True))  # the relay tells the customer
        notice = wait_for(lambda: [t for t in sends_to(running, chat) if "looking after" in t], 30)
        assert notice, "the assignment notice was never sent"
        assert wait_for(lambda: "writing delivery records failed" in running.server.log_text(), 30)
    finally:
        running.sql("DROP TRIGGER fail_done")

    def recorded() -> list[tuple[object, ...]]:
        return running.sql(
            "SELECT d.status FROM outbox_deliveries d JOIN outbox o ON o.id = d.event_id "
            "JOIN tickets tk ON tk.id = json_extract(o.payload, '$.ticket_id') "
            "JOIN channel_identities ci ON ci.id = tk.identity_id "
            f"WHERE d.handler = 'customer_chat' AND ci.chat_id = '{chat}'"
        )

    assert wait_for(lambda: recorded() == [("done",)], 10), (
        f"the sent notice is still {recorded()} after the database came back: "
        "it will be sent again when the lease expires"
    )
    assert len([t for t in sends_to(running, chat) if "looking after" in t]) == 1
