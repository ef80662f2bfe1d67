"""5. Bad input: fuzzed webhooks (hypothesis) and schemathesis on the admin API.

No answer may be a 5xx (a 5xx on a webhook makes the platform redeliver the same poison
forever), and the server must still be alive afterwards.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resilience.harness import Context, telegram_env
from resilience.procs import SECRET, Server, start_fake
from resilience.report import Result
from tests.email.test_event_webhook import Signer
from tests.fakes.slack_events import SlackEvents

SLACK_SECRET = "resilience-slack-signing"  # noqa: S105 - local only
SLACK_TOKEN = "xoxb-resilience-token"  # noqa: S105 - a fake bot token
ADMIN_KEY = re.compile(r"shown only this once:\s*\n\s*(\S+)")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=25,
)
huge_text = st.integers(5_000, 300_000).map(lambda n: ("é🙂 " * n)[:n])
texts = st.text(max_size=300) | huge_text | json_values
people = st.fixed_dictionaries(
    {"id": st.integers(1, 2**40) | json_values, "is_bot": st.booleans() | json_values},
    optional={"first_name": texts, "language_code": texts},
)
chats = st.fixed_dictionaries(
    {
        "id": st.integers(-(2**45), 2**45) | json_values,
        "type": st.sampled_from(["private", "group", "supergroup", "channel", "nonsense"])
        | json_values,
    },
)
messages = st.fixed_dictionaries(
    {
        "message_id": st.integers(1, 2**31) | json_values,
        "date": st.integers(0, 2**31) | json_values,
    },
    optional={
        "chat": chats | json_values,
        "from": people | json_values,
        "text": texts,
        "caption": texts,
        "photo": json_values,
        "document": json_values,
        "entities": json_values,
    },
)
updates = st.fixed_dictionaries(
    {"update_id": st.integers(1, 2**53) | json_values},
    optional={
        "message": messages | json_values,
        "edited_message": messages,
        "callback_query": json_values
        | st.fixed_dictionaries({"id": texts, "from": people, "data": texts}),
        "my_chat_member": json_values,
    },
)
bodies = (
    updates.map(lambda u: json.dumps(u).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=2_000)  # mostly invalid UTF-8, rarely JSON
    | updates.map(lambda u: json.dumps(u).encode().replace(b'"text": "', b'"text": "\xff\xfe', 1))
)
targets = st.sampled_from(["telegram", "telegram", "telegram", "slack", "sendgrid", "nosecret"])


@dataclass
class Tally:
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)


def fuzz_webhooks(base: str, examples: int, tally: Tally, sendgrid: Signer) -> None:
    signer = SlackEvents(signing_secret=SLACK_SECRET)
    client = httpx.Client(timeout=60)

    def post(path: str, body: bytes, headers: dict[str, str]) -> str:
        # A connection the server closed between two requests is not an answer: the
        # platforms retry on a fresh one, and so do we, once.
        for attempt in (1, 2):
            try:
                return str(client.post(base + path, content=body, headers=headers).status_code)
            except httpx.TransportError as exc:
                if attempt == 2:
                    return type(exc).__name__
        raise AssertionError("unreachable")

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(target=targets, body=bodies)
    def one(target: str, body: bytes) -> None:
        headers: dict[str, str] = {"Content-Type": "application/json"}
        path = "/telegram/webhook"
        if target == "telegram":
            headers["X-Telegram-Bot-Api-Secret-Token"] = SECRET
        elif target == "slack":
            path = "/slack/events"
            headers = signer.sign(body)
            headers["Content-Type"] = "application/json"
        elif target == "sendgrid":
            path = "/sendgrid/events"
            headers.update(sendgrid.headers(body.decode("utf-8", "replace")))
        status = post(path, body, headers)
        tally.requests += 1
        tally.by_status[f"{path} {status}"] = tally.by_status.get(f"{path} {status}", 0) + 1
        if not status.isdigit() or int(status) >= 500:
            tally.server_errors.append(f"{path} -> {status}: {body[:160]!r}")

    try:
        one()
    finally:
        client.close()


def answers_200(url: str) -> bool:
    try:
        return httpx.get(url, timeout=30).status_code == 200
    except httpx.HTTPError:
        return False


def slack_mounted(base: str) -> bool:
    """Slack's url_verification handshake, signed: 200 when the Slack endpoints are mounted."""
    events = SlackEvents(signing_secret=SLACK_SECRET)
    body = events.body(events.url_verification())
    answer = httpx.post(f"{base}/slack/events", content=body, headers=events.sign(body), timeout=30)
    return answer.status_code == 200


def run_schemathesis(base: str, key: str, examples: int, workdir: Any) -> tuple[int, str]:
    argv = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{base}/api/v1/openapi.json",
        "--url", f"{base}/api/v1", "--checks", "not_a_server_error",
        "--max-examples", str(examples), "-H", f"Authorization: Bearer {key}",
        "--request-timeout", "30", "--no-color",
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our interpreter, a local URL
        argv, capture_output=True, text=True, timeout=900, cwd=workdir
    )
    return done.returncode, (done.stdout + done.stderr)[-3000:]


async def fuzzed_input(ctx: Context) -> list[Result]:
    size = ctx.size
    webhooks = Result(
        "fuzzed webhooks",
        load=f"{size.fuzz_examples} requests",
        faults="random JSON, huge text, bad UTF-8, wrong types",
    )
    admin = Result(
        "schemathesis on the admin API",
        load=f"{size.schemathesis_examples} examples/operation",
        faults="generated requests",
    )
    workdir = ctx.folder("fuzz")
    sendgrid = Signer()
    telegram = start_fake(ctx.procs, "tests.fakes.telegram_api", workdir)
    slack = start_fake(ctx.procs, "tests.fakes.slack_api", workdir)
    env = telegram_env(
        ctx.sqlite_url("fuzz"),
        telegram,
        workdir,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid.public_key,
    )
    server = Server(ctx.procs, env, workdir)
    server.start()
    await asyncio.to_thread(server.wait_ready)
    tally = Tally()
    await asyncio.to_thread(fuzz_webhooks, server.url, size.fuzz_examples, tally, sendgrid)
    webhooks.notes.append(
        ", ".join(f"{k} x{v}" for k, v in sorted(tally.by_status.items())) or "no requests"
    )
    if tally.server_errors:
        webhooks.fail(f"{len(tally.server_errors)} answers were 5xx or no answer")
        webhooks.notes += tally.server_errors[:6]
    if not await asyncio.to_thread(slack_mounted, server.url):
        webhooks.notes.append("Slack events are not mounted: Slack was not fuzzed")

    if size.schemathesis_examples <= 0:
        admin.unavailable("not run at this size")
    elif not await asyncio.to_thread(answers_200, f"{server.url}/api/v1/openapi.json"):
        admin.unavailable("the admin API is not mounted at /api/v1")
    elif (found := ADMIN_KEY.search(server.log_text())) is None:
        admin.unavailable("no bootstrap admin key in the server's output")
    else:
        code, output = await asyncio.to_thread(
            run_schemathesis, server.url, found.group(1), size.schemathesis_examples, workdir
        )
        summary = [line for line in output.splitlines() if line.strip()][-3:]
        admin.notes += summary
        if code != 0:
            admin.fail(f"schemathesis exited {code}")

    healthy = server.alive() and await asyncio.to_thread(answers_200, f"{server.url}/healthz")
    if not healthy:
        webhooks.fail("the server crashed or stopped answering /healthz")
    server.stop()
    return [webhooks, admin]
