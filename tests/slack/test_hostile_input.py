"""Hostile requests to the Slack endpoints: refused with 4xx, never logged with their bodies."""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import tables as t
from tests.slack.conftest import BILLING, Desk, eventually
from tests.slack.test_inbound import _messages, _ticket_with_thread

PATHS = ["/slack/events", "/slack/interactions", "/slack/commands"]
CUSTOMER_TEXT = "my card number is 4111 1111"  # what must never reach a log line


async def inbox_rows(desk: Desk) -> int:
    async with desk.db.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(t.inbox))).scalar_one())


@pytest.mark.parametrize("path", PATHS)
async def test_unreadable_timestamp_is_refused_not_a_crash(desk: Desk, path: str) -> None:
    body = desk.events.body(desk.events.direct_message("hello"))
    headers = {**desk.events.sign(body), "X-Slack-Request-Timestamp": "abc"}
    answer = await desk.http.post(path, content=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json() == {"error": "invalid request"}  # as bolt answers a bad signature


async def test_badly_signed_request_is_logged_without_its_body(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Bolt sets this logger's level from the root's when it builds its middleware.
    caplog.set_level(logging.DEBUG, logger="slack_bolt.RequestVerification")
    body = desk.events.body(desk.events.direct_message(CUSTOMER_TEXT * 1000))
    forged = await desk.post("/slack/events", body, secret="wrong")
    stale = await desk.post("/slack/events", body, age=600)
    assert (forged.status_code, stale.status_code) == (401, 401)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("refused a request to /slack/events" in line for line in lines) == 2
    assert not [line for line in lines if CUSTOMER_TEXT in line]
    assert max(len(line) for line in lines) < 500


async def _ten_megabytes(pulled: list[int]) -> AsyncIterator[bytes]:
    chunk = (CUSTOMER_TEXT + " ").encode() * 2340  # 64 KiB
    for _ in range(160):
        pulled.append(len(chunk))
        yield chunk


@pytest.mark.parametrize("path", PATHS)
async def test_oversize_body_is_refused_before_it_is_read(
    desk: Desk, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_bolt.RequestVerification")
    headers = {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=0"}
    pulled: list[int] = []
    declared = await desk.http.post(
        path,
        content=_ten_megabytes(pulled),
        headers={**headers, "Content-Length": str(160 * 65_520)},
    )
    assert declared.status_code == 413
    assert pulled == []  # refused on the Content-Length alone
    chunked = await desk.http.post(path, content=_ten_megabytes(pulled), headers=headers)
    assert chunked.status_code == 413
    assert len(pulled) < 40  # stopped at the 1 MiB cap, not at 10 MB
    assert not [r for r in caplog.records if CUSTOMER_TEXT in r.getMessage()]


DEEP = '{"deeper":' * 5000 + "0" + "}" * 5000  # json.dumps itself cannot write this


def _with_deep(payload: dict[str, Any]) -> str:
    payload["metadata"] = "DEEP"
    return json.dumps(payload).replace('"DEEP"', DEEP)


async def test_deeply_nested_signed_event_is_refused_and_the_next_one_works(desk: Desk) -> None:
    ticket_id, thread_ts = await _ticket_with_thread(desk)
    await desk.add_agent()
    rows = await inbox_rows(desk)
    envelope = _with_deep(desk.events.thread_reply(BILLING, thread_ts, "first"))
    refused = await desk.post("/slack/events", envelope.encode())
    action = _with_deep(desk.events.block_action("ticket_claim", "CR-1001"))
    form = urllib.parse.urlencode({"payload": action}).encode()
    refused_action = await desk.post("/slack/interactions", form)
    assert (refused.status_code, refused_action.status_code) == (400, 400)
    assert "nested" in refused.text
    assert await inbox_rows(desk) == rows  # nothing recorded

    answer = await desk.event(desk.events.thread_reply(BILLING, thread_ts, "second"))
    assert answer.status_code == 200
    found = await eventually(lambda: _messages(desk, ticket_id))
    assert [body for _, body, _ in found] == ["second"]


@pytest.mark.parametrize(
    "shape",
    [
        {"event": [1, 2]},
        {"event": "message"},
        {"event": None},
        {"authorizations": "T0CARELINE"},
        {"user": 7},
    ],
    ids=["event-list", "event-string", "event-null", "authorizations-string", "user-number"],
)
async def test_signed_envelope_of_the_wrong_shape_is_refused(
    desk: Desk, shape: dict[str, Any]
) -> None:
    envelope = {**desk.events.direct_message("hello"), **shape}
    answer = await desk.event(envelope)
    assert answer.status_code == 400
    assert await inbox_rows(desk) == 0


async def test_signed_button_press_without_an_action_id_is_refused(desk: Desk) -> None:
    action = desk.events.block_action("ticket_claim", "CR-1001")
    del action["actions"][0]["action_id"]
    answer = await desk.action(action)
    assert answer.status_code == 400
