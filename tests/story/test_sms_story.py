"""A whole complaint by text message, on the real `careline serve` and its dialog engine.

Sam has no Telegram and no Slack: Sam texts the support number. The complaint becomes a
ticket (with a verified email address), an admin assigns it and answers over the API, and
every step reaches Sam's phone by text; Sam rates the resolved ticket by texting a number.
Twilio and SendGrid are contract-checking fakes, each a subprocess like the server; Sam's
texts reach the server as Twilio posts them, signed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from resilience.harness import sms_env
from resilience.procs import Fake, Processes, Server, create_admin_key, start_fake, workspace
from tests.fakes.twilio_api import text_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SAM = "+14155550142"
EMAIL = "sam.texter@example.com"
COMPLAINT = "My internet has been down since Monday, router lights are red"
ANSWER = "We reset your line; the router should be green within the hour"
SENDGRID_KEY = "SG.sms-story-key"


@dataclass
class World:
    server: Server
    twilio: Fake
    sendgrid: Fake
    admin: httpx.Client


class Phone:
    """Sam's phone: sends texts to the support number and reads what came back."""

    def __init__(self, world: World) -> None:
        self.world = world

    def texts(self) -> list[str]:
        return [
            str(call["params"]["Body"])
            for call in self.world.twilio.calls()
            if call["method"] == "messages.create"
            and call["status"] == 201
            and call["params"].get("To") == SAM
        ]

    def send(self, body: str, expect: str) -> str:
        seen = len(self.texts())
        answer = text_in(self.world.server.url, SAM, body)
        assert answer.status_code == 200, answer.text
        return self.expect(expect, after=seen)

    def expect(self, words: str, after: int = 0, within: float = 30.0) -> str:
        found = wait_for(
            lambda: next((t for t in self.texts()[after:] if words.lower() in t.lower()), None),
            within,
        )
        assert found, f"Sam never read {words!r}; the phone shows {self.texts()[after:]}"
        return found


def code_mail(world: World) -> str:
    def find() -> str | None:
        for call in world.sendgrid.calls():
            body = call["params"]
            if call["status"] == 202 and "code" in body.get("subject", "").lower():
                return next(c["value"] for c in body["content"] if c["type"] == "text/plain")
        return None

    text = wait_for(find, 30)
    assert text, "no verification code was mailed"
    found = re.search(r"\b(\d{6})\b", text)
    assert found, text
    return found.group(1)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    procs = Processes()
    with workspace() as workdir:
        try:
            twilio = start_fake(procs, "tests.fakes.twilio_api", workdir)
            sendgrid = start_fake(procs, "tests.fakes.sendgrid_api", workdir)
            env = sms_env(
                f"sqlite+aiosqlite:///{workdir / 'careline.db'}",
                twilio,
                workdir,
                SENDGRID_API_KEY=SENDGRID_KEY,
                SENDGRID_API_HOST=sendgrid.url,
                CARELINE_EMAIL_FROM="support@careline.example",
            )
            key = create_admin_key(env, "sms-story")
            server = Server(procs, env, workdir)
            env["CARELINE_PUBLIC_URL"] = server.url  # what Twilio calls, and signs
            server.start()
            server.wait_ready()
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers) as admin:
                yield World(server, twilio, sendgrid, admin)
            server.stop()
        finally:
            procs.close()


def test_a_complaint_opened_followed_and_rated_by_text(world: World) -> None:
    sam = Phone(world)

    # -- a complaint by text becomes a ticket, with a verified email address ----------------
    greeting = sam.send("Hello", "1. Report a problem")
    assert "assistant" in greeting
    sam.send(COMPLAINT, "Which area")
    sam.send("6", "How urgent")  # Telecom
    sam.send("3", "email")  # High
    sam.send(EMAIL, "6-digit code")
    confirmed = sam.send(code_mail(world), "confirmed")
    choices = re.findall(r"^(\d)\. (.+)$", confirmed, re.MULTILINE)
    assert [label for _, label in choices] == ["Here, by text message", "By email", "Both"]
    both = next(number for number, label in choices if "both" in label.lower())
    summary = sam.send(both, "Shall I open it?")
    assert COMPLAINT in summary and "Telecom" in summary and EMAIL in summary
    yes = re.search(r"^(\d)\. Yes, open it$", summary, re.MULTILINE)
    assert yes, summary
    opened = sam.send(yes.group(1), "CR-")
    reference = re.search(r"CR-\d+", opened)
    assert reference, opened
    ref = reference.group(0)
    [ticket] = world.admin.get("/tickets").json()["items"]
    assert (ticket["reference"], ticket["category"], ticket["priority"]) == (
        ref,
        "telecom",
        "high",
    )

    # -- an admin assigns it and answers; each step reaches Sam's phone ---------------------
    agent = world.admin.post("/agents", json={"name": "Grace Hopper", "email": "grace@example.com"})
    assert agent.status_code == 201, agent.text
    assigned = world.admin.post(
        f"/tickets/{ticket['id']}/assign", json={"agent_id": agent.json()["id"]}
    )
    assert assigned.status_code == 200, assigned.text
    sam.expect(f"Grace Hopper from our team is now looking after {ref}")
    replied = world.admin.post(
        f"/tickets/{ticket['id']}/replies", json={"body": ANSWER, "agent_id": agent.json()["id"]}
    )
    assert replied.status_code == 201, replied.text
    sam.expect(f"Grace Hopper: {ANSWER}")

    # -- resolved: Sam is told and rates it with a number -----------------------------------
    resolved = world.admin.post(f"/tickets/{ticket['id']}/status", json={"status": "resolved"})
    assert resolved.status_code == 200, resolved.text
    told = sam.expect(f"{ref} is resolved")
    assert re.search(r"^5\. ", told, re.MULTILINE), told  # the rating, as numbered lines
    sam.send("5", "Anything you'd like to add?")
    sam.send("The line works again, thanks", "Thank you for your feedback")
    assert world.admin.get(f"/tickets/{ticket['id']}").json()["csat_score"] == 5

    # -- Sam's status question by text, and no text broke Twilio's contract ----------------
    sam.send("My tickets", ref)
    violations = httpx.get(f"{world.twilio.url}/_fake/violations").json()
    assert violations == []
