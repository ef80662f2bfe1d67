"""What the web chat shows a visitor, against the real server and dialog engine.

Over HTTP: the page's automatic /start is not the visitor's line, and "Export my data" is a
readable summary with a download only this visitor can fetch. In Chromium: an agent's answer
is a person's bubble, every bubble has a time, and used or stale buttons are disabled.
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bots.server import create_app
from core.config import Settings
from tests.support.browser import ARGS, ARTIFACTS, chromium_or_skip
from tests.support.live import LiveServer


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


class Visitor:
    """The page's HTTP fallback, as a visitor's browser would use it."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=f"{url}/chat/api", timeout=20)
        session = self.http.post("/session")
        assert session.status_code == 200, session.text
        self.token = session.json()["token"]
        self.http.headers["X-Careline-Visitor"] = self.token
        self.http.cookies.clear()  # the header alone carries the visitor, as in a frame

    def say(self, text: str = "", choice: str | None = None) -> None:
        sent = self.http.post("/messages", json={"text": text, "choice": choice})
        assert sent.status_code == 200, sent.text

    def lines(self) -> list[dict[str, Any]]:
        return list(self.http.get("/messages").json()["lines"])


def test_automatic_start_greets_without_showing_as_the_visitors_line(
    server: tuple[str, str],
) -> None:
    visitor = Visitor(server[0])
    visitor.say("/start")  # what chat.js sends when it opens on an empty conversation

    lines = visitor.lines()
    assert [line["direction"] for line in lines] == ["out"]
    assert "Careline assistant" in lines[0]["text"]


def test_data_export_is_a_summary_and_a_download_for_this_visitor_only(
    server: tuple[str, str],
) -> None:
    url, _ = server
    visitor = Visitor(url)
    visitor.say("/start")
    visitor.say("/mydata", choice="/mydata")
    visitor.say("Export my data", choice="export")

    shown = visitor.lines()[-2:]
    summary, download = shown
    assert summary["text"].startswith("Everything we store about you")
    assert not any(line["text"].lstrip().startswith("{") for line in shown)  # no raw JSON
    assert download["download"] == {
        "label": "Download your data (JSON file)",
        "href": "/chat/api/export",
    }

    exported = visitor.http.get("/export")
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == 'attachment; filename="careline-data.json"'
    data = exported.json()
    assert [i["channel"] for i in data["identities"]] == ["webchat"]
    assert "customer" in data and data["tickets"] == []

    assert httpx.get(f"{url}/chat/api/export").status_code == 401  # no session
    stranger = Visitor(url)
    assert stranger.http.get("/export").status_code == 404  # nothing stored about them


@pytest.mark.browser
def test_agent_reply_is_a_persons_bubble_with_times_and_spent_buttons_disabled(
    server: tuple[str, str],
) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    url, key = server
    admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {key}"})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(
            viewport={"width": 390, "height": 780}, timezone_id="Asia/Tokyo", locale="en-GB"
        )
        page.goto(f"{url}/chat")
        log = page.locator("#log")
        expect(log).to_contain_text("Report a problem", timeout=20_000)
        expect(log.locator(".line--in")).to_have_count(0)  # the automatic /start is not shown

        menu = log.locator(".line--out").first.get_by_role("button", name="Report a problem")
        menu.click()
        expect(menu).to_be_disabled()  # a used set is spent at once
        expect(menu).to_have_attribute("aria-pressed", "true")
        page.get_by_label("Your message").fill("My invoice shows the wrong address")
        page.get_by_role("button", name="Send").click()
        page.get_by_role("button", name="Billing").last.click()
        page.get_by_role("button", name="Normal").last.click()
        page.get_by_role("button", name="Skip").last.click()
        page.get_by_role("button", name="Yes, open it").last.click()
        expect(log).to_contain_text("CR-1001", timeout=10_000)
        # Only the newest set of buttons is live; every older one is disabled.
        groups = log.locator(".choices")
        live = log.locator(".choices:not(.choices--used)")
        assert live.count() <= 1 < groups.count()
        expect(groups.first.get_by_role("button").last).to_be_disabled()

        agent = admin.post("/agents", json={"name": "grace Hopper", "email": "grace@example.com"})
        assert agent.status_code == 201, agent.text
        agent_id = agent.json()["id"]
        ticket_id = admin.get("/tickets").json()["items"][0]["id"]
        assert admin.post(f"/tickets/{ticket_id}/assign", json={"agent_id": agent_id}).is_success
        before = time.time()
        reply = admin.post(
            f"/tickets/{ticket_id}/replies",
            json={"body": "I have corrected the address.", "agent_id": agent_id},
        )
        assert reply.status_code == 201, reply.text

        bubble = log.locator(".line--agent")
        expect(bubble).to_have_count(1, timeout=15_000)
        expect(bubble.locator(".line__who")).to_contain_text("grace Hopper")
        expect(bubble.locator(".avatar")).to_have_text("G")
        expect(bubble.locator(".line__text")).to_have_text("I have corrected the address.")
        bot_colour = log.locator(".line--out:not(.line--agent)").first.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert bubble.evaluate("e => getComputedStyle(e).backgroundColor") != bot_colour

        # Every bubble carries a time, in the visitor's own zone (Tokyo is UTC+9).
        lines, times = log.locator(".line"), log.locator(".line time")
        assert times.count() == lines.count()
        stamp = bubble.locator("time")
        sent_at = stamp.get_attribute("datetime") or ""
        local = time.strftime("%H:%M", time.gmtime(before + 9 * 3600))
        assert abs(_epoch(sent_at) - before) < 60
        assert stamp.inner_text() in {local, _next_minute(local)}
        page.screenshot(path=str(ARTIFACTS / "webchat-agent-bubble.png"), full_page=True)

        page.reload()  # the restored conversation keeps old buttons spent
        expect(log.locator(".line--agent")).to_have_count(1, timeout=10_000)
        expect(log.locator(".choices:not(.choices--used)")).to_have_count(0)
        browser.close()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _next_minute(clock: str) -> str:
    hours, minutes = map(int, clock.split(":"))
    total = (hours * 60 + minutes + 1) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def test_a_spanish_browser_gets_the_page_and_the_conversation_in_spanish(
    server: tuple[str, str],
) -> None:
    """The page's words follow Accept-Language; the first message carries the browser's
    language, so a new visitor is greeted, served and told about their ticket in Spanish."""
    url, _ = server
    spanish = httpx.get(f"{url}/chat", headers={"Accept-Language": "es-ES,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in spanish.text and "Escriba su mensaje" in spanish.text
    assert "Accept-Language" in spanish.headers["vary"]
    unknown = httpx.get(f"{url}/chat", headers={"Accept-Language": "ja, de;q=0.4"})
    assert '<html lang="de">' in unknown.text  # the best of those we speak
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 780}, locale="es-ES")
        page.goto(f"{url}/chat")
        log = page.locator("#log")
        expect(page.get_by_role("heading")).to_have_text("Chat de atención al cliente")
        expect(log).to_contain_text("¡Hola! Soy el asistente de Careline", timeout=20_000)
        log.get_by_role("button", name="Informar de un problema").click()
        page.get_by_label("Su mensaje").fill("La factura tiene una dirección equivocada")
        page.get_by_role("button", name="Enviar").click()
        page.get_by_role("button", name="Facturación").last.click()
        page.get_by_role("button", name="Normal").last.click()
        page.get_by_role("button", name="Omitir").last.click()
        page.get_by_role("button", name="Sí, ábralo").last.click()
        expect(log).to_contain_text("Su ticket CR-1001 está abierto", timeout=10_000)
        expect(page.locator("#tickets")).to_have_text("CR-1001 · nuevo", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "webchat-spanish.png"), full_page=True)
        browser.close()
