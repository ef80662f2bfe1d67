"""A customer in a real browser (headless Chromium) against the running server.

The customer opens a ticket in the page, an admin assigns it over the API, the agent replies
over the API, and the page shows the reply live. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bots.server import create_app
from core.config import Settings
from tests.support.browser import ARGS, ARTIFACTS, chromium_or_skip
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}",
        data_dir=str(tmp_path / "var"),
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    with LiveServer(app) as url:
        key = app.state.runtime.admin_key
        assert key, "the first start prints an admin key"
        yield url, key


def test_customer_opens_a_ticket_and_sees_the_agent_reply_live(server: tuple[str, str]) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    url, key = server
    admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 780})  # a phone
        page.goto(f"{url}/chat")
        log = page.locator("#log")
        expect(log).to_contain_text("Report a problem", timeout=20_000)

        page.get_by_role("button", name="Report a problem").click()
        expect(log.locator(".line--out").last).to_contain_text("describe", ignore_case=True)
        page.get_by_label("Your message").fill("The app crashes when I upload a photo")
        page.get_by_role("button", name="Send").click()
        page.get_by_role("button", name="Product").last.click()
        page.get_by_role("button", name="High").last.click()
        page.get_by_role("button", name="Skip").last.click()
        page.get_by_role("button", name="Yes, open it").last.click()
        expect(log).to_contain_text("CR-1001", timeout=10_000)
        expect(page.locator("#tickets")).to_contain_text("CR-1001")
        page.screenshot(path=str(ARTIFACTS / "webchat-ticket-opened.png"), full_page=True)

        agent = admin.post("/agents", json={"name": "Grace Hopper", "email": "grace@example.com"})
        assert agent.status_code == 201, agent.text
        agent_id = agent.json()["id"]
        ticket_id = admin.get("/tickets").json()["items"][0]["id"]
        assigned = admin.post(f"/tickets/{ticket_id}/assign", json={"agent_id": agent_id})
        assert assigned.status_code == 200, assigned.text
        expect(log).to_contain_text("Grace Hopper", timeout=15_000)
        expect(page.locator("#tickets")).to_contain_text("being worked on", timeout=15_000)

        reply = admin.post(
            f"/tickets/{ticket_id}/replies",
            json={"body": "Thanks! A fix ships tomorrow.", "agent_id": agent_id},
        )
        assert reply.status_code == 201, reply.text
        expect(log).to_contain_text("Thanks! A fix ships tomorrow.", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "webchat-agent-replied.png"), full_page=True)

        # A reload restores the whole conversation.
        page.reload()
        expect(log).to_contain_text("Thanks! A fix ships tomorrow.", timeout=10_000)
        expect(log).to_contain_text("The app crashes when I upload a photo")
        browser.close()


def test_a_refused_session_is_explained_and_retried_not_stored(server: tuple[str, str]) -> None:
    """429 on the first session call: the page shows the server's reason, stores no token,
    and starts the chat once the server allows it."""
    chromium = chromium_or_skip()
    from playwright.sync_api import Route, expect, sync_playwright

    url, _ = server
    refusals = []

    def refuse_once(route: Route) -> None:
        if refusals:
            route.continue_()
            return
        refusals.append(route.request.url)
        route.fulfill(
            status=429,
            headers={"Retry-After": "1", "Content-Type": "application/json"},
            body='{"error": "Too many new chats from your network. Try again in a minute."}',
        )

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        page.route("**/chat/api/session", refuse_once)
        page.goto(f"{url}/chat")
        expect(page.locator("#notice")).to_contain_text("Too many new chats", timeout=10_000)
        assert page.evaluate("() => Object.values(localStorage)") == []
        expect(page.locator("#log")).to_contain_text("Report a problem", timeout=20_000)
        token = page.evaluate("() => Object.values(localStorage)")
        assert len(token) == 1 and token[0] not in ("", "undefined")
        assert len(refusals) == 1
        browser.close()


STATEMENT = b"%PDF-1.4\n% my card statement, March\n"
REFUND = b"%PDF-1.4\n% refund confirmation CR-1001\n"


async def _agent_reply_with_file(database_url: str, ticket_id: int, agent_id: int) -> None:
    """What an agent's file from the ticket's Slack thread becomes (tests/slack/test_files)."""
    from core import services
    from core.db.database import Database
    from core.db.files import SqlFileStore
    from core.files import describe

    db = Database(database_url)
    try:
        file = describe(REFUND, name="refund.pdf", declared=None, limit=1 << 20)
        stored = await SqlFileStore(db).put(file, REFUND)
        async with db.uow() as uow:
            await services.add_agent_reply(
                uow, ticket_id, agent_id, "Here is the confirmation",
                attachments=[stored.attachment()],
            )  # fmt: skip
            await uow.commit()
    finally:
        await db.dispose()


def test_files_go_both_ways_in_the_page(server: tuple[str, str], tmp_path: Path) -> None:
    """The customer attaches a statement; the agent's file arrives as a download in the
    agent's bubble and saves with its own name and bytes."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    url, key = server
    admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 780})
        page.goto(f"{url}/chat")
        log = page.locator("#log")
        expect(log).to_contain_text("Report a problem", timeout=20_000)
        page.get_by_role("button", name="Report a problem").click()
        expect(log.locator(".line--out").last).to_contain_text("describe", ignore_case=True)
        page.get_by_label("Your message").fill("I was charged twice, statement attached")
        page.get_by_role("button", name="Send").click()
        page.get_by_role("button", name="Billing").last.click()
        page.get_by_role("button", name="High").last.click()
        page.get_by_role("button", name="Skip").last.click()
        page.get_by_role("button", name="Yes, open it").last.click()
        expect(log).to_contain_text("CR-1001", timeout=10_000)
        page.locator("#file").set_input_files(
            files=[{"name": "statement.pdf", "mimeType": "application/pdf", "buffer": STATEMENT}]
        )
        expect(log).to_contain_text("📎 statement.pdf", timeout=10_000)

        ticket = admin.get("/tickets").json()["items"][0]
        detail = admin.get(f"/tickets/{ticket['id']}").json()
        sent = [a for e in detail["timeline"] for a in e.get("attachments") or []]
        assert [(a["name"], a["size"]) for a in sent] == [("statement.pdf", len(STATEMENT))]
        agent = admin.post("/agents", json={"name": "Grace Hopper", "email": "grace@example.com"})
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}"
        reply = _agent_reply_with_file(database_url, ticket["id"], agent.json()["id"])
        with ThreadPoolExecutor(1) as elsewhere:  # Playwright's loop runs in this thread
            elsewhere.submit(asyncio.run, reply).result()

        download_link = log.get_by_role("link", name="refund.pdf (1 KB)")
        expect(download_link).to_be_visible(timeout=15_000)
        expect(log).to_contain_text("Here is the confirmation")
        page.screenshot(path=str(ARTIFACTS / "webchat-agent-file.png"), full_page=True)
        with page.expect_download() as downloading:
            download_link.click()
        saved = downloading.value
        assert saved.suggested_filename == "refund.pdf"
        target = tmp_path / "saved.pdf"
        saved.save_as(target)
        assert target.read_bytes() == REFUND
        browser.close()
