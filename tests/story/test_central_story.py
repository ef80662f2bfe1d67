"""The product's central story, end to end, on the real `careline serve` and its defaults.

A customer complains in Telegram with a file and becomes a ticket (with a verified email
address); its Slack thread opens in the desk channel with a download link to the file; an
admin assigns it to an agent over the API; the agent answers in the thread with a file; the
customer reads the answer and gets the file in Telegram and by email, is told it is
resolved, rates it, and then erases their data, after which nothing of them remains: not in
the database (their files neither), not in the desk's copies, not in an export.

Every platform is a contract-checking fake on 127.0.0.1 (Telegram Bot API, Slack Web API,
SendGrid Mail Send), each a subprocess like the server. The customer acts like Telegram
does: updates posted to the webhook with its secret, and a reply that rides in the
webhook's answer run against the Bot API, so the fake holds the whole chat in order.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from resilience.fuzz import SLACK_SECRET, SLACK_TOKEN
from resilience.harness import telegram_env
from resilience.procs import (
    SECRET,
    TOKEN,
    Fake,
    Processes,
    Server,
    create_admin_key,
    start_fake,
    workspace,
)
from tests.fakes.slack_events import SlackEvents
from tests.fakes.telegram_updates import Person, TelegramUpdates
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

DESK = "C0DESK0001"
AGENT_SLACK = "U0AGENT01"
DANA = Person(id=4_200_000_001, first_name="Dana", last_name="Storyteller", username="dana_s")
EMAIL = "dana.story@example.com"
COMPLAINT = "My card was charged twice for order 4411"
ANSWER = "We refunded the second charge of order 4411"
SENDGRID_KEY = "SG.story-key"
STATEMENT = b"%PDF-1.4\n% card statement of Dana Storyteller, order 4411\n"
REFUND = b"%PDF-1.4\n% refund of order 4411 to Dana Storyteller\n"


@dataclass
class World:
    server: Server
    telegram: Fake
    slack: Fake
    sendgrid: Fake
    database: Path
    admin: httpx.Client

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=30) as conn:
            return list(conn.execute(statement).fetchall())


class Customer:
    """Dana in Telegram: writes, presses buttons, reads the chat as the fake holds it."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.updates = TelegramUpdates(first_update_id=910_000_001)

    def chat(self) -> list[dict[str, Any]]:
        return [
            call["params"]
            for call in self.world.telegram.calls()
            if call["method"] == "sendMessage"
            and call["status"] == 200
            and str(call["params"].get("chat_id")) == str(DANA.id)
        ]

    def texts(self) -> list[str]:
        return [str(message.get("text", "")) for message in self.chat()]

    def say(self, text: str, expect: str) -> str:
        update = (
            self.updates.command(text[1:], person=DANA)
            if text.startswith("/")
            else self.updates.text(text, person=DANA)
        )
        return self._post(update, expect)

    def send_document(self, name: str, content: bytes, caption: str, expect: str) -> str:
        file_id = f"BQAC-{hashlib.sha256(content).hexdigest()[:12]}"
        spec = {"file_id": file_id, "content_base64": base64.b64encode(content).decode()}
        httpx.post(f"{self.world.telegram.url}/_fake/files", json=spec, timeout=10)
        document = {
            "file_id": file_id,
            "file_unique_id": file_id[-10:],
            "file_name": name,
            "mime_type": "application/pdf",
            "file_size": len(content),
        }
        update = self.updates.message(DANA, document=document, caption=caption)
        return self._post(update, expect)

    def files(self) -> list[dict[str, Any]]:
        """The documents Dana received."""
        return [
            call["params"]["document"]
            for call in self.world.telegram.calls()
            if call["method"] == "sendDocument"
            and call["status"] == 200
            and str(call["params"].get("chat_id")) == str(DANA.id)
        ]

    def press(self, label: str, expect: str) -> str:
        """Tap the button with this label on the newest message that has it."""
        for message in reversed(self.chat()):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if label.lower() in button["text"].lower():
                        update = self.updates.callback_query(
                            button["callback_data"], person=DANA, message_text=message["text"]
                        )
                        return self._post(update, expect)
        raise AssertionError(f"no button {label!r} in the chat: {self.texts()[-3:]}")

    def _post(self, update: dict[str, Any], expect: str) -> str:
        seen = len(self.chat())
        answer = httpx.post(
            f"{self.world.server.url}/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        method = answer.json() if answer.content else {}
        if method.get("method"):  # Telegram runs the method given in a webhook's answer
            name = method.pop("method")
            sent = httpx.post(f"{self.world.telegram.url}/bot{TOKEN}/{name}", json=method)
            assert sent.status_code == 200, sent.text
        return self.expect(expect, after=seen)

    def expect(self, words: str, after: int = 0, within: float = 30.0) -> str:
        """The first message after the `after`-th that says `words` (waiting for the relay)."""
        found = wait_for(
            lambda: next((t for t in self.texts()[after:] if words.lower() in t.lower()), None),
            within,
        )
        assert found, f"Dana never read {words!r}; the chat ends with {self.texts()[after:]}"
        return found


def emails_to(world: World, address: str) -> list[dict[str, Any]]:
    """Mails SendGrid accepted for `address`: subject and the plain-text part."""
    found = []
    for call in world.sendgrid.calls():
        body = call["params"]
        to = [p["email"] for p in body["personalizations"][0]["to"]]
        if call["status"] == 202 and address in to:
            text = next(c["value"] for c in body["content"] if c["type"] == "text/plain")
            files = [
                (a["filename"], base64.b64decode(a["content"])) for a in body.get("attachments", [])
            ]
            found.append({"subject": body.get("subject", ""), "text": text, "attachments": files})
    return found


def mail_with(world: World, words: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        mails = emails_to(world, EMAIL)
        return next((m for m in mails if words.lower() in m["subject"].lower()), None)

    mail = wait_for(find, 30)
    subjects = [m["subject"] for m in emails_to(world, EMAIL)]
    assert mail, f"no email about {words!r} reached {EMAIL}; got {subjects}"
    return mail


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    procs = Processes()
    with workspace() as workdir:
        try:
            telegram = start_fake(procs, "tests.fakes.telegram_api", workdir)
            slack = start_fake(procs, "tests.fakes.slack_api", workdir)
            sendgrid = start_fake(procs, "tests.fakes.sendgrid_api", workdir)
            database = workdir / "careline.db"
            env = telegram_env(
                f"sqlite+aiosqlite:///{database}",
                telegram,
                workdir,
                SLACK_BOT_TOKEN=SLACK_TOKEN,
                SLACK_SIGNING_SECRET=SLACK_SECRET,
                SLACK_API_URL=f"{slack.url}/api/",
                CARELINE_SLACK_SUPPORT_CHANNEL=DESK,
                SENDGRID_API_KEY=SENDGRID_KEY,
                SENDGRID_API_HOST=sendgrid.url,
                CARELINE_EMAIL_FROM="support@careline.example",
            )
            key = create_admin_key(env, "story")
            server = Server(procs, env, workdir)
            env["CARELINE_PUBLIC_URL"] = server.url  # links to stored files
            server.start()
            server.wait_ready()
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers) as admin:
                yield World(server, telegram, slack, sendgrid, database, admin)
            server.stop()
        finally:
            procs.close()


def test_a_complaint_from_telegram_to_erasure(world: World) -> None:
    dana = Customer(world)

    # -- a complaint in Telegram becomes a ticket, with a verified email address ------------
    dana.say("/start", "Hi Dana")
    dana.say("I want to complain", "describe the problem")
    dana.send_document("statement.pdf", STATEMENT, COMPLAINT, "which area")
    dana.press("Billing", "how urgent")
    dana.press("High", "email")
    dana.say(EMAIL, "6-digit code")
    code_mail = mail_with(world, "verification code")
    code = re.search(r"\b(\d{6})\b", code_mail["text"])
    assert code, code_mail["text"]
    dana.say(code.group(1), "confirmed")
    dana.press("Both", "open it")
    opened = dana.press("Yes, open it", "CR-")
    reference = re.search(r"CR-\d+", opened)
    assert reference, opened
    ref = reference.group(0)
    [ticket] = world.admin.get("/tickets").json()["items"]
    assert ticket["reference"] == ref

    # -- its Slack thread opens in the desk channel -----------------------------------------
    def root() -> dict[str, Any] | None:
        return next(
            (
                c
                for c in world.slack.calls()
                if c["method"] == "chat.postMessage"
                and c["params"].get("channel") == DESK
                and not c["params"].get("thread_ts")
                and ref in str(c["params"].get("text", ""))
            ),
            None,
        )

    posted = wait_for(root, 30)
    assert posted, "the ticket's root message never reached the desk channel"
    # The card offers Dana's statement as a signed download link on this server.
    link = re.search(r"<(http://[^|>]+/files/\w+\?[^|>]+)\|statement\.pdf>", str(posted))
    assert link, str(posted["params"].get("blocks"))
    file_url = link.group(1).replace("&amp;", "&")
    downloaded = httpx.get(file_url)
    assert downloaded.content == STATEMENT
    assert downloaded.headers["content-disposition"].startswith("attachment")
    [(thread_ts,)] = world.sql(
        f"SELECT thread_ts FROM slack_threads WHERE ticket_id = {ticket['id']}"
    )

    # -- an admin assigns it; Dana is told who is on it, in Telegram and by email -----------
    agent = world.admin.post(
        "/agents",
        json={"name": "Grace Hopper", "email": "grace@example.com", "slack_user_id": AGENT_SLACK},
    )
    assert agent.status_code == 201, agent.text
    assigned = world.admin.post(
        f"/tickets/{ticket['id']}/assign", json={"agent_id": agent.json()["id"]}
    )
    assert assigned.status_code == 200, assigned.text
    dana.expect(f"Grace Hopper from our team is now looking after {ref}")
    mail_with(world, f"Grace Hopper is looking after {ref}")

    # -- the agent answers in the thread; Dana reads it in Telegram and by email ------------
    events = SlackEvents(signing_secret=SLACK_SECRET)
    shared = httpx.post(
        f"{world.slack.url}/_fake/files",
        json={
            "name": "refund.pdf",
            "mimetype": "application/pdf",
            "content_base64": base64.b64encode(REFUND).decode(),
            "user": AGENT_SLACK,
        },
    ).json()
    reply = events.file_share(DESK, ANSWER, [shared], user=AGENT_SLACK, thread_ts=thread_ts)
    body = events.body(reply)
    answer = httpx.post(f"{world.server.url}/slack/events", content=body, headers=events.sign(body))
    assert answer.status_code == 200, answer.text
    dana.expect(f"Grace Hopper: {ANSWER}")
    [document] = wait_for(dana.files, 30)  # the agent's file itself, after the words
    assert document["upload"] == "refund.pdf"
    assert document["sha256"] == hashlib.sha256(REFUND).hexdigest()
    replied = mail_with(world, f"replied on {ref}")
    assert ANSWER in replied["text"] and "Attached: refund.pdf" in replied["text"]
    assert replied["attachments"] == [("refund.pdf", REFUND)]

    # -- resolved: Dana is told, rates it, and the score is kept at once --------------------
    resolved = world.admin.post(f"/tickets/{ticket['id']}/status", json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    dana.expect(f"{ref} is resolved")
    mail_with(world, f"{ref} is resolved")
    dana.press("5", "thank")
    assert world.admin.get(f"/tickets/{ticket['id']}").json()["csat_score"] == 5

    # -- Dana erases their data; nothing of them remains ------------------------------------
    customer_id = ticket["customer_id"]
    before = everything_stored(world)
    assert EMAIL in before and COMPLAINT in before and ANSWER in before  # the check can fail
    assert "Dana Storyteller" in before  # in the stored files' bytes
    dana.say("/mydata", "with your data")
    dana.press("Erase my data", "Erase everything?")
    dana.press("Yes", "erased")
    personal = (EMAIL, COMPLAINT, ANSWER, "Storyteller", "dana_s", code.group(1))

    def still_stored() -> list[str]:
        return [p for p in personal if p in everything_stored(world)]

    assert wait_for(lambda: not still_stored(), 10), f"{still_stored()} still stored"
    assert httpx.get(file_url).status_code == 404  # the link outlives nothing
    exported = world.admin.get(f"/customers/{customer_id}/export").json()
    assert not [p for p in personal if p in str(exported)]
    assert all(not t["messages"] for t in exported["tickets"])

    def desk_thread() -> str:
        replies = httpx.post(
            f"{world.slack.url}/api/conversations.replies",
            data={"channel": DESK, "ts": thread_ts},
            headers={"Authorization": f"Bearer {SLACK_TOKEN}"},
        )
        return str(replies.json().get("messages", []))

    assert COMPLAINT in str(world.slack.calls())  # the desk had a copy of Dana's words
    assert wait_for(lambda: not [p for p in personal if p in desk_thread()], 30), (
        f"the desk's thread still holds Dana's words: {desk_thread()[:500]}"
    )


def everything_stored(world: World) -> str:
    """Every row of every table of the database, as text."""
    tables = [name for (name,) in world.sql("SELECT name FROM sqlite_master WHERE type='table'")]
    return "\n".join(str(row) for table in tables for row in world.sql(f'SELECT * FROM "{table}"'))
