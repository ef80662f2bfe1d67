"""The kill -9 checker counts every message a customer got, by chat and content.

Before, notes and tickets were counted as rows, replies by count and time per chat (a webhook
answer counted whatever its text or chat), only sendMessage was looked at, and a notice that
reached a customer twice went to an allowance: the table said "0 duplicated".
"""

from __future__ import annotations

from typing import Any

from resilience.report import Result
from resilience.scenarios import score
from resilience.telegram_load import Effects, Load, Sent, Verdict, judge, plan

CHAT = 7_100_000_001
OTHER = 7_100_000_002
NOTICE = "You are number 1 in the queue for a person on CR-1001. We will write here."


def delivered(conversations: list[list[Sent]], start: float = 100.0) -> list[list[Sent]]:
    """Each update delivered and settled in its own second, one after another."""
    at = start
    for script in conversations:
        for sent in script:
            sent.first_at, sent.acked_at, sent.settled_at = at, at + 0.5, at + 0.6
            at += 1.0
    return conversations


def effects(conversations: list[list[Sent]], notices: list[tuple[str, str]]) -> Effects:
    chats = [s[0].chat_id for s in conversations]
    return Effects(
        tickets_per_chat=dict.fromkeys(chats, 1),
        references={str(c): {f"CR-{1001 + i}"} for i, c in enumerate(chats)},
        notes={s.text: 1 for script in conversations for s in script if not s.opens_ticket},
        inbox={s.update_id: ("done", 0) for script in conversations for s in script},
        notices=[(chat, "done", message_id) for chat, message_id in notices],
    )


def call(chat: int, text: str, at: float, message_id: int, method: str = "sendMessage") -> Any:
    return {
        "method": method,
        "params": {"chat_id": chat, "text": text},
        "at": at,
        "status": 200,
        "result_id": str(message_id),
    }


def replies(conversations: list[list[Sent]]) -> list[dict[str, Any]]:
    """One reply per update, sent while it was delivered; message ids 1, 2, ... per chat."""
    calls = []
    for script in conversations:
        for n, sent in enumerate(script, 1):
            text = "Queued as CR-1001." if sent.opens_ticket else "Added to CR-1001."
            calls.append(call(sent.chat_id, text, sent.first_at + 0.2, n))
    return calls


def scored(verdict: Verdict) -> Result:
    result = Result("kill -9 under Telegram load")
    score(result, verdict, Load("", "", [], ""))
    return result


def test_clean_run_has_no_duplicates() -> None:
    conversations = delivered(plan(3, 1))
    calls = [*replies(conversations), call(CHAT, NOTICE, 110.0, 4)]
    result = scored(judge(conversations, effects(conversations, [(str(CHAT), "4")]), calls))
    assert (result.lost, result.duplicated, result.failed) == (0, 0, False), result.notes


def test_notice_that_reached_the_customer_twice_is_duplicated() -> None:
    conversations = delivered(plan(3, 1))
    calls = [*replies(conversations), call(CHAT, NOTICE, 110.0, 4), call(CHAT, NOTICE, 170.0, 5)]
    verdict = judge(conversations, effects(conversations, [(str(CHAT), "5")]), calls)
    result = scored(verdict)
    assert verdict.notices_duplicated == 1
    assert (result.duplicated, result.in_flight, result.failed) == (1, 0, True)


def test_notice_repeated_after_a_kill_in_its_send_is_duplicated_and_in_flight() -> None:
    conversations = delivered(plan(3, 1))
    calls = [*replies(conversations), call(CHAT, NOTICE, 110.0, 4), call(CHAT, NOTICE, 170.0, 5)]
    kills = [(110.5, 110.5)]  # the notice went out, the process died before `done`
    verdict = judge(conversations, effects(conversations, [(str(CHAT), "5")]), calls, kills)
    result = scored(verdict)
    assert (result.duplicated, result.in_flight, result.failed) == (1, 1, False)
    assert result.duplicated_column == "1 (1 in flight)"


def test_reply_sent_to_another_chat_is_missing_here_and_unasked_there() -> None:
    conversations = delivered(plan(2, 2))
    first, second = conversations[0][0], conversations[1][0]
    calls = [
        call(OTHER, "Queued as CR-1001.", first.first_at + 0.2, 1),  # chat 1's answer, to chat 2
        call(OTHER, "Queued as CR-1002.", second.first_at + 0.2, 2),
    ]
    verdict = judge(conversations, effects(conversations, []), calls)
    result = scored(verdict)
    assert (verdict.replies_missing, verdict.unattributed_sends) == (1, 1)
    assert (result.lost, result.duplicated, result.failed) == (1, 1, True)


def test_repeat_of_any_bot_api_method_is_duplicated() -> None:
    conversations = delivered(plan(2, 1))
    note = conversations[0][1]
    calls = [
        *replies(conversations),
        call(CHAT, "", note.first_at + 0.3, 3, method="sendDocument"),
        call(CHAT, "", note.first_at + 0.4, 4, method="sendDocument"),
    ]
    verdict = judge(conversations, effects(conversations, []), calls)
    assert verdict.calls == {"sendMessage 200": 2, "sendDocument 200": 2}
    assert scored(verdict).duplicated == 2  # one repeat, and one more message than it gave
