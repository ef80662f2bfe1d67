"""The whole story in real browsers (headless Chromium) against a running server.

An admin becomes the first admin from the first start's link and invites an agent; the
agent sets a password from the emailed link; a customer opens a ticket in the web chat (with
a verified email); the admin assigns it to the agent, who sees it arrive without a reload,
replies and resolves it from the console; the customer sees each step live and gets the
emails. Every console page is scanned with axe-core: no serious or critical violation.
Screenshots go to test-artifacts/console-*.png.
"""

from __future__ import annotations

import email
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from bots.server import create_app
from core.config import Settings
from tests.support.browser import ARGS, ARTIFACTS, chromium_or_skip
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
PASSWORD = "a long enough password"
CUSTOMER_EMAIL = "carla@example.com"


class Mailbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def all(self) -> list[EmailMessage]:
        if not self.folder.exists():
            return []
        return [
            email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[misc]
            for path in sorted(self.folder.glob("*.eml"))
        ]

    def wait_for(self, to: str, subject_part: str, timeout: float = 20) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.all():
                if message["To"] == to and subject_part.lower() in message["Subject"].lower():
                    return message
            time.sleep(0.2)
        subjects = [(m["To"], m["Subject"]) for m in self.all()]
        raise AssertionError(f"no email to {to} about {subject_part!r}; got {subjects}")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Any, Mailbox]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}",
        data_dir=str(tmp_path / "var"),
        auto_assign=False,  # the admin assigns, by hand
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    with LiveServer(app) as url:
        yield url, app.state.runtime, Mailbox(tmp_path / "var" / "mailbox")


def scan(page: Any, name: str) -> None:
    """axe-core on the page as it is: no serious or critical violation; a screenshot."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
             .map(v => ({id: v.id, impact: v.impact,
                         nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)
    bad = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"


def test_the_whole_story_from_first_admin_to_a_resolved_ticket(
    server: tuple[str, Any, Mailbox],
) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    url, runtime, mailbox = server
    link = runtime.first_admin_link
    assert link and "/console/invitations/" in link, "the first start prints the admin's link"
    link = url + link[link.index("/console/") :]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        # axe is injected as a script: the console's policy allows only its own.
        staff = {"viewport": {"width": 1280, "height": 900}, "bypass_csp": True}
        admin = browser.new_context(**staff).new_page()

        # -- the first admin ---------------------------------------------------------------
        admin.goto(link)
        expect(admin.get_by_role("heading", name="Welcome to Careline")).to_be_visible()
        scan(admin, "accept-invitation")
        admin.get_by_label("Your name").fill("Ada Admin")
        admin.get_by_label("Email").fill("ada@example.com")
        admin.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
        admin.get_by_label("The same password again").fill(PASSWORD)
        admin.get_by_role("button", name="Set password and sign in").click()
        expect(admin.get_by_role("heading", name="Tickets")).to_be_visible()
        scan(admin, "queue-empty")

        # -- an agent is invited, and sets a password from the email -------------------------
        admin.get_by_role("link", name="Agents").click()
        admin.get_by_label("Name", exact=True).fill("Grace Hopper")
        admin.get_by_label("Email").fill("grace@example.com")
        admin.get_by_label("Skills (agents; comma-separated categories)").fill("product")
        admin.get_by_role("button", name="Send invitation").click()
        expect(admin.get_by_role("status")).to_contain_text("Invitation sent")
        scan(admin, "agents")
        invitation = mailbox.wait_for("grace@example.com", "invitation")
        found = re.search(r"http\S+/console/invitations/\S+", text_of(invitation))
        assert found, text_of(invitation)
        agent = browser.new_context(**staff).new_page()
        agent.goto(url + found.group(0)[found.group(0).index("/console/") :])
        expect(agent.get_by_label("Your name")).to_have_value("Grace Hopper")
        agent.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
        agent.get_by_label("The same password again").fill(PASSWORD)
        agent.get_by_role("button", name="Set password and sign in").click()
        expect(agent.get_by_role("heading", name="Tickets")).to_be_visible()
        expect(agent.get_by_role("link", name="Agents")).to_have_count(0)

        # -- a customer opens a ticket in the web chat, with a verified email ---------------
        customer = browser.new_context(viewport={"width": 390, "height": 780}).new_page()
        customer.goto(f"{url}/chat")
        log = customer.locator("#log")
        expect(log).to_contain_text("Report a problem", timeout=20_000)
        customer.get_by_role("button", name="Report a problem").click()
        customer.get_by_label("Your message").fill("The app crashes when I upload a photo")
        customer.get_by_role("button", name="Send", exact=True).click()
        customer.get_by_role("button", name="Product").last.click()
        customer.get_by_role("button", name="High").last.click()
        expect(log.locator(".line--out").last).to_contain_text("email", ignore_case=True)
        customer.get_by_label("Your message").fill(CUSTOMER_EMAIL)
        customer.get_by_role("button", name="Send", exact=True).click()
        code_mail = mailbox.wait_for(CUSTOMER_EMAIL, "verification code")
        code = re.search(r"\b(\d{6})\b", text_of(code_mail))
        assert code
        customer.get_by_label("Your message").fill(code.group(1))
        customer.get_by_role("button", name="Send", exact=True).click()
        expect(log).to_contain_text("is confirmed")
        customer.get_by_role("button", name="Both").last.click()
        customer.get_by_role("button", name="Yes, open it").last.click()
        expect(customer.locator("#tickets")).to_contain_text("CR-1001", timeout=10_000)
        customer.screenshot(path=str(ARTIFACTS / "console-customer-opened.png"), full_page=True)

        # -- the admin assigns it; the agent's queue shows it without a reload ---------------
        agent.goto(f"{url}/console/?view=mine")
        expect(agent.locator("#queue-rows")).to_contain_text("No tickets here.")
        admin.goto(f"{url}/console/?view=unassigned")
        admin.get_by_role("link", name="CR-1001").click()
        expect(admin.get_by_role("heading", name=re.compile("CR-1001"))).to_be_visible()
        scan(admin, "ticket-admin")
        admin.get_by_label("Assign to").select_option(label="Grace Hopper — 0 of 5 open")
        admin.get_by_role("button", name="Assign").click()
        expect(admin.get_by_role("status").first).to_contain_text("Ticket assigned")
        expect(agent.locator("#queue-rows")).to_contain_text("CR-1001", timeout=15_000)
        expect(log).to_contain_text("Grace Hopper", timeout=15_000)
        mailbox.wait_for(CUSTOMER_EMAIL, "Grace Hopper is looking after CR-1001")
        scan(agent, "queue-agent")

        # -- the agent replies and resolves; the customer sees it live ----------------------
        agent.get_by_role("link", name="CR-1001").click()
        expect(agent.locator("#timeline")).to_contain_text("The app crashes when I upload a photo")
        expect(agent.locator("#others")).to_contain_text("Ada Admin", timeout=20_000)
        agent.get_by_label(re.compile("^Internal note")).fill("Reproduced on Android 15")
        agent.get_by_role("button", name="Add internal note").click()
        expect(agent.get_by_role("status").first).to_contain_text("Internal note added")
        agent.get_by_label(re.compile("^Reply to the customer")).fill(
            "Thanks! A fix ships tomorrow; until then, upload from the gallery."
        )
        agent.get_by_role("button", name="Send reply").click()
        expect(agent.get_by_role("status").first).to_contain_text("Reply sent")
        expect(log).to_contain_text("A fix ships tomorrow", timeout=15_000)
        expect(log).not_to_contain_text("Reproduced on Android 15")
        scan(agent, "ticket-agent")
        agent.get_by_label("Change status").select_option("resolved")
        agent.get_by_role("button", name="Change status").click()
        expect(agent.get_by_role("status").first).to_contain_text("Status changed")
        expect(log).to_contain_text("resolved", timeout=15_000)
        customer.screenshot(path=str(ARTIFACTS / "console-customer-resolved.png"), full_page=True)
        reply_mail = mailbox.wait_for(CUSTOMER_EMAIL, "replied on CR-1001")
        assert "A fix ships tomorrow" in text_of(reply_mail)
        assert "Reproduced on Android 15" not in text_of(reply_mail)
        mailbox.wait_for(CUSTOMER_EMAIL, "CR-1001 is resolved")

        # -- the admin's other pages pass the scan too ----------------------------------------
        for name in ("canned", "reports", "dead-letters", "keys"):
            admin.goto(f"{url}/console/{name}")
            scan(admin, name)
        admin.goto(f"{url}/console/account")
        scan(admin, "account")
        admin.get_by_role("button", name="Sign out", exact=True).click()
        expect(admin.get_by_role("heading", name="Sign in to the console")).to_be_visible()
        scan(admin, "sign-in")
        admin.set_viewport_size({"width": 390, "height": 780})
        agent.set_viewport_size({"width": 390, "height": 780})
        agent.goto(f"{url}/console/?view=all")
        scan(agent, "queue-phone")
        browser.close()
