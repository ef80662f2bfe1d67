"""The fake Slack Web API with the real slack_sdk, and the signed request builder."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.contracts import contracts_dir, load_contract
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_events import SlackEvents

# Only in failures, or carrying warnings (response_metadata) on write methods.
ERROR_KEYS = {
    "error",
    "errors",
    "needed",
    "provided",
    "warning",
    "deprecated_argument",
    "response_metadata",
}
# Present in the samples but only for enterprise grids or rotating tokens.
CONDITIONAL_KEYS = {
    "auth.test": {"enterprise_id", "expires_in"},
}
BUTTON = {
    "type": "button",
    "action_id": "close",
    "value": "CR-1042",
    "text": {"type": "plain_text", "text": "Close"},
}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=f"{fake.url}/api/")


def sample_keys(method: str) -> set[str]:
    sample = load_contract(f"slack_samples/api/{method}.json")
    return set(sample) - ERROR_KEYS - CONDITIONAL_KEYS.get(method, set())


def test_fake_starts_quickly() -> None:
    started = time.perf_counter()
    with FakeSlack():
        pass
    assert time.perf_counter() - started < 0.3


async def test_ticket_thread_calls_pass_and_answer_in_sample_shapes(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_user("U0AGENT01", email="ana@example.test", name="Ana")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "CR-1042"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Card charged twice*"}},
        {"type": "actions", "elements": [BUTTON]},
    ]
    answers = {
        "auth.test": await client.auth_test(),
        "chat.postMessage": (
            posted := await client.chat_postMessage(
                channel="C0DESK", text="CR-1042 opened", blocks=blocks
            )
        ),
        "chat.update": await client.chat_update(channel="C0DESK", ts=posted["ts"], text="closed"),
        "reactions.add": await client.reactions_add(
            channel="C0DESK", timestamp=posted["ts"], name="white_check_mark"
        ),
        "chat.postEphemeral": await client.chat_postEphemeral(
            channel="C0DESK", user="U0AGENT01", text="only you"
        ),
        "users.info": await client.users_info(user="U0AGENT01"),
        "users.lookupByEmail": await client.users_lookupByEmail(email="ana@example.test"),
        "conversations.open": await client.conversations_open(users="U0AGENT01"),
        "conversations.replies": await client.conversations_replies(
            channel="C0DESK", ts=posted["ts"]
        ),
        "views.open": await client.views_open(
            trigger_id="1.1.x",
            view={
                "type": "modal",
                "title": {"type": "plain_text", "text": "Assign"},
                "blocks": blocks[:2],
            },
        ),
    }
    for method, answer in answers.items():
        assert answer["ok"] is True, method
        assert sample_keys(method) <= set(answer.data), method
    fake.assert_no_violations()
    assert answers["chat.update"]["message"]["text"] == "closed"


async def test_thread_replies_and_ts_increase(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0DESK", text="CR-1")
    reply = await client.chat_postMessage(channel="C0DESK", text="note", thread_ts=parent["ts"])
    fake.add_message("C0DESK", "agent answer", thread_ts=parent["ts"])
    thread = await client.conversations_replies(channel="C0DESK", ts=parent["ts"])
    assert float(reply["ts"]) > float(parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["CR-1", "note", "agent answer"]


async def test_missing_token_is_not_authed(fake: FakeSlack) -> None:
    anonymous = AsyncWebClient(base_url=f"{fake.url}/api/")
    with pytest.raises(SlackApiError) as raised:
        await anonymous.chat_postMessage(channel="C0DESK", text="hi")
    assert raised.value.response["error"] == "not_authed"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"channel": "C0DESK"}, "no_text"),
        ({"text": "hi"}, "invalid_arguments"),
        ({"channel": "C0DESK", "text": "x" * 40_001}, "msg_too_long"),
        ({"channel": "C0DESK", "blocks": [{"type": "sectoin"}]}, "invalid_blocks"),
        ({"channel": "C0DESK", "blocks": [{"type": "divider"}] * 51}, "invalid_blocks"),
        (
            {
                "channel": "C0DESK",
                "blocks": [{"type": "section", "text": {"type": "markdown", "text": "hi"}}],
            },
            "invalid_blocks",
        ),
        (
            {
                "channel": "C0DESK",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}],
            },
            "invalid_blocks",
        ),
        (
            {"channel": "C0DESK", "blocks": [{"type": "actions", "elements": [BUTTON, BUTTON]}]},
            "invalid_blocks",
        ),
        (
            {
                "channel": "C0DESK",
                "blocks": [{"type": "actions", "elements": [{**BUTTON, "value": "v" * 2001}]}],
            },
            "invalid_blocks",
        ),
    ],
)
async def test_invalid_post_is_rejected_and_recorded(
    fake: FakeSlack, client: AsyncWebClient, arguments: dict[str, object], error: str
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMessage", json=arguments)
    assert raised.value.response["ok"] is False
    assert raised.value.response["error"] == error
    assert fake.violations


async def test_form_encoded_calls_are_checked_too(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.api_call("chat.postMessage", data={"channel": "C1", "text": "hi"})
    assert posted["ok"]
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.api_call(
            "chat.postMessage", data={"channel": "C1", "blocks": json.dumps([{"type": "x"}])}
        )


async def test_update_of_unknown_message_fails_like_slack(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C0DESK", ts="1.2", text="x")


async def test_rate_limit_raises_by_default_and_is_retried_with_the_handler(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fail_rate_limited("chat.postMessage", retry_after=1)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0DESK", text="hi")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["retry-after"] in ("1", ["1"])

    fake.fail_rate_limited("chat.postMessage", retry_after=0)
    patient = AsyncWebClient(
        token="xoxb-test",
        base_url=f"{fake.url}/api/",
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert (await patient.chat_postMessage(channel="C0DESK", text="hi"))["ok"]
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]


async def test_server_error_and_slow_answers(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_server_error("chat.postMessage")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0DESK", text="hi")
    fake.delay("chat.postMessage", 1.0)
    impatient = AsyncWebClient(token="xoxb-test", base_url=f"{fake.url}/api/", timeout=0.2)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await impatient.chat_postMessage(channel="C0DESK", text="hi")


EVENTS = SlackEvents(signing_secret="s3cret")
ENVELOPES = {
    "thread_reply": EVENTS.thread_reply("C0DESK", "1700000000.000100", "On it"),
    "direct_message": EVENTS.direct_message("my card was charged twice"),
    "app_mention": EVENTS.app_mention("C0DESK", "status CR-1042"),
    "bot_message": EVENTS.bot_message("C0DESK", "CR-1042 opened"),
    "message_changed": EVENTS.message_changed("C0DESK", "1700000000.000200", "fixed"),
}
SAMPLES = {
    "thread_reply": "MessagePayload",
    "direct_message": "MessagePayload",
    "app_mention": "AppMentionPayload",
    "bot_message": "MessageBotPayload",
    "message_changed": "MessageChangedPayload",
}


@pytest.mark.parametrize("kind", ENVELOPES)
def test_envelopes_fit_the_wrapper_schema_and_sample_shapes(kind: str) -> None:
    envelope = ENVELOPES[kind]
    jsonschema.validate(envelope, load_contract("slack_event_wrapper.schema.json"))
    sample = load_contract(f"slack_samples/events/{SAMPLES[kind]}.json")
    assert set(envelope) <= set(sample)
    assert envelope["event"]["type"] == sample["event"]["type"]
    assert set(envelope["event"]) <= set(sample["event"]) | {"event_ts", "parent_user_id"}


def test_wrapper_schema_catches_a_broken_envelope() -> None:
    broken = EVENTS.direct_message("hi")
    del broken["event_id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, load_contract("slack_event_wrapper.schema.json"))


def test_interactivity_and_commands_have_the_sample_fields() -> None:
    action = EVENTS.block_action("close", "CR-1042")
    sample = load_contract(
        "slack_samples/app-backend/interactive-components/BlockActionPayload.json"
    )
    assert set(action) <= set(sample) and action["type"] == "block_actions"
    command = EVENTS.slash_command("/ticket", "CR-1042")
    fields = dict(pair.split("=", 1) for pair in command.decode().split("&"))
    sample_fields = set(
        load_contract("slack_samples/app-backend/slash-commands/SlashCommandPayload.json")
    )
    assert set(fields) == sample_fields - {"enterprise_id", "enterprise_name"}  # grid only
    assert contracts_dir().is_dir()


@pytest.mark.parametrize(
    "body",
    [
        EVENTS.body(ENVELOPES["thread_reply"]),
        SlackEvents.interactive_body(EVENTS.block_action("a", "b")),
        EVENTS.slash_command("/ticket"),
    ],
)
def test_signed_requests_verify_and_forgeries_do_not(body: bytes) -> None:
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(body, EVENTS.sign(body))
    assert not verifier.is_valid_request(body, EVENTS.sign(body, secret="wrong"))
    assert not verifier.is_valid_request(body, EVENTS.sign(body, age=600))


def test_retry_headers_are_added_on_request() -> None:
    headers = EVENTS.sign(EVENTS.url_verification(), retry_num=2)
    assert headers["X-Slack-Retry-Num"] == "2"
    assert headers["X-Slack-Retry-Reason"] == "http_timeout"
    assert headers["Content-Type"] == "application/json"


async def test_deletes_follow_slacks_rules_on_who_may_delete_what(fake: FakeSlack) -> None:
    bot = AsyncWebClient(token="xoxb-test", base_url=f"{fake.url}/api/")
    admin_token = fake.add_user_token("U0ADMIN01", admin=True)
    admin = AsyncWebClient(token=admin_token, base_url=f"{fake.url}/api/")
    member = AsyncWebClient(token=fake.add_user_token("U0OTHER01"), base_url=f"{fake.url}/api/")
    own = await bot.chat_postMessage(channel="C0DESK", text="the bot's")
    file = fake.add_file("a.pdf", b"%PDF-1.4", "application/pdf", user="U0AGENT01")
    typed = fake.add_message("C0DESK", "an agent's", user="U0AGENT01", files=[file])

    deleted = await bot.chat_delete(channel="C0DESK", ts=own["ts"])
    assert sample_keys("chat.delete") <= set(deleted.data)
    for client, call in (
        (bot, {"channel": "C0DESK", "ts": typed["ts"]}),
        (member, {"channel": "C0DESK", "ts": typed["ts"]}),
    ):
        with pytest.raises(SlackApiError, match="cant_delete_message"):
            await client.chat_delete(**call)
    with pytest.raises(SlackApiError, match="cant_delete_file"):
        await bot.files_delete(file=file["id"])
    assert (await admin.chat_delete(channel="C0DESK", ts=typed["ts"]))["ok"]
    assert (await admin.files_delete(file=file["id"]))["ok"]
    assert fake.messages == {} and fake.files == {}
    fake.assert_no_violations()
