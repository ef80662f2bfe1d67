"""Bad input to the real server's webhooks: refused with 4xx, never a 5xx.

A 5xx makes the platform deliver the same request again (Slack three times), so a poison
request must be refused for good. Found by `python -m resilience` (scenario fuzz).
"""

from __future__ import annotations

import httpx
import pytest

from resilience.fuzz import SLACK_SECRET
from tests.fakes.slack_events import SlackEvents
from tests.resilience.conftest import Running

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "body",
    [b"[]", b'[{"type": "event_callback"}]', b"\x89K not utf-8", b"42"],
    ids=["empty-array", "array-of-events", "invalid-utf8", "number"],
)
def test_signed_slack_body_that_is_not_a_json_object_is_refused_with_4xx(
    running: Running, body: bytes
) -> None:
    """bots/slack/serving.py `slack_router.receive` hands every signed body to bolt, which
    decodes it as UTF-8 (UnicodeDecodeError) and reads it as a dict (AttributeError on a
    list): 500."""
    headers = SlackEvents(signing_secret=SLACK_SECRET).sign(body)
    headers["Content-Type"] = "application/json"
    answer = httpx.post(
        f"{running.server.url}/slack/events", content=body, headers=headers, timeout=30
    )
    assert 400 <= answer.status_code < 500, answer.status_code


def test_server_survives_bad_input(running: Running) -> None:
    assert httpx.get(f"{running.server.url}/healthz", timeout=30).status_code == 200
