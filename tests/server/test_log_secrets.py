"""The real `careline serve`, logging at DEBUG, through a short story on every surface; then
its whole output is searched for every secret and personal value the story used.

The story: probes, a web-chat visitor (session, WebSocket, upload, poll), a Telegram
customer, a Slack customer, an SMS customer, an admin creating an agent. Nothing it sends
may come back in a log line: not the visitor token, the admin key, a platform token or
secret, an e-mail address or a phone number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect

from resilience.fuzz import SLACK_SECRET, SLACK_TOKEN
from resilience.harness import telegram_env
from resilience.procs import (
    SECRET,
    TOKEN,
    Processes,
    Server,
    create_admin_key,
    start_fake,
    workspace,
)
from tests.fakes.slack_events import SlackEvents
from tests.fakes.telegram_updates import TelegramUpdates
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, SUPPORT_NUMBER, text_in
from tests.support.browser import ARTIFACTS

SECRET_KEY = "story-signing-key-0123456789"
CUSTOMER_EMAIL = "dana.story@example.com"
AGENT_EMAIL = "grace.story@example.com"
PHONE = "+447700900123"
SMS_NUMBER = "+14155550199"
WORDS = "Zebrafish crossing"  # what the customers write opens with this


@pytest.fixture(scope="module")
def story() -> Iterator[tuple[str, dict[str, str]]]:
    """Runs the story once; yields the server's output and the values it must not contain."""
    procs = Processes()
    with workspace() as workdir:
        try:
            telegram = start_fake(procs, "tests.fakes.telegram_api", workdir)
            slack = start_fake(procs, "tests.fakes.slack_api", workdir)
            twilio = start_fake(procs, "tests.fakes.twilio_api", workdir)
            env = telegram_env(
                f"sqlite+aiosqlite:///{workdir / 'careline.db'}",
                telegram,
                workdir,
                CARELINE_LOG_LEVEL="debug",
                CARELINE_SECRET_KEY=SECRET_KEY,
                SLACK_BOT_TOKEN=SLACK_TOKEN,
                SLACK_SIGNING_SECRET=SLACK_SECRET,
                SLACK_API_URL=f"{slack.url}/api/",
                TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                TWILIO_FROM_NUMBER=SUPPORT_NUMBER,
                TWILIO_API_BASE_URL=twilio.url,
            )
            admin_key = create_admin_key(env, "story")  # before the start: no key notice is printed
            server = Server(procs, env, workdir)
            env["CARELINE_PUBLIC_URL"] = server.url
            server.start()
            server.wait_ready()
            known = {"admin key": admin_key, **tell_the_story(server.url, admin_key)}
            server.stop()
            known |= {
                "bot token": TOKEN,
                "Telegram webhook secret": SECRET,
                "Slack bot token": SLACK_TOKEN,
                "Slack signing secret": SLACK_SECRET,
                "signing key": SECRET_KEY,
                "customer e-mail": CUSTOMER_EMAIL,
                "agent e-mail": AGENT_EMAIL,
                "phone number": PHONE,
                "SMS customer's number": SMS_NUMBER,
                "Twilio auth token": AUTH_TOKEN,
                "customer's words": WORDS,
            }
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "story-debug.log").write_text(server.log_text())
            yield server.log_text(), known
        finally:
            procs.close()


def tell_the_story(url: str, admin_key: str) -> dict[str, str]:
    said = f"{WORDS}: my email is {CUSTOMER_EMAIL} and my phone {PHONE}"
    for _ in range(3):
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    with httpx.Client(base_url=url, timeout=30) as web:
        token = web.post("/chat/api/session").json()["token"]
        visitor = {"X-Careline-Visitor": token}
        ws_url = url.replace("http", "ws") + "/chat/ws"
        with connect(ws_url, subprotocols=["careline", f"careline-visitor.{token}"]) as ws:  # type: ignore[list-item]
            ws.send(json.dumps({"text": said, "client_id": "story-1"}))
            ws.recv(timeout=30)
        sent = web.post(
            "/chat/api/upload",
            headers=visitor,
            files={"file": ("note.txt", said.encode(), "text/plain")},
        )
        assert sent.status_code == 200, sent.text
        assert web.get("/chat/api/messages", headers=visitor).status_code == 200

        update = TelegramUpdates().text(said)
        secret = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        assert web.post("/telegram/webhook", json=update, headers=secret).status_code == 200

        events = SlackEvents(signing_secret=SLACK_SECRET)
        body = events.body(events.direct_message(said))
        assert web.post("/slack/events", content=body, headers=events.sign(body)).is_success

        assert text_in(url, SMS_NUMBER, said).status_code == 200
        assert text_in(url, SMS_NUMBER, "STOP").status_code == 200
        assert text_in(url, SMS_NUMBER, "hi", signature="forged").status_code == 403

        admin = {"Authorization": f"Bearer {admin_key}"}
        agent = {"name": "Grace Story", "email": AGENT_EMAIL}
        assert web.post("/api/v1/agents", json=agent, headers=admin).status_code == 201
        assert web.get("/api/v1/tickets", headers=admin).status_code == 200
    return {"visitor token": token}


def test_no_secret_or_personal_value_reaches_the_log(story: tuple[str, dict[str, str]]) -> None:
    output, known = story
    assert "DEBUG" in output, "the story ran with logging at DEBUG"
    assert "WebSocket /chat/ws" in output, "uvicorn logged the socket it accepted"
    leaked = {
        name: [line[:300] for line in output.splitlines() if value in line][:3]
        for name, value in known.items()
        if value in output
    }
    assert leaked == {}


def test_readiness_probes_do_not_log_alembic_lines(story: tuple[str, dict[str, str]]) -> None:
    output, _ = story
    after_start = output.split("Application startup complete", 1)[1]
    assert "alembic" not in after_start
