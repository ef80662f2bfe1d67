"""The embeddable widget in a real browser (headless Chromium), on a shop's site.

The shop (http://localhost:PORT) is another site than Careline (http://127.0.0.1:PORT), so
the framed chat gets no cookie: it signs in with the token it keeps, over a WebSocket whose
URL carries no token. A site that is not allowed cannot frame the chat at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bots.server import create_app
from core.config import Settings
from dialogs.turn import Reply, UserSaid
from tests.support.browser import ARGS, ARTIFACTS, chromium_or_skip
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser


class EchoEngine:
    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        return [Reply(f"echo: {said.text}")]


def shop(careline: dict[str, str]) -> Starlette:
    """A site with the widget's one line (Careline's URL is known once it has started)."""

    async def home(_: object) -> HTMLResponse:
        src = f"{careline['url']}/chat/widget.js"
        return HTMLResponse(
            f'<!doctype html><html lang="en"><head><title>Shop</title></head><body>'
            f'<h1>A shop</h1><script src="{src}" async></script></body></html>'
        )

    return Starlette(routes=[Route("/", home)])


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The allowed shop's URL and a stranger's, both embedding the widget."""
    careline: dict[str, str] = {}
    with LiveServer(shop(careline)) as allowed, LiveServer(shop(careline)) as stranger:
        allowed, stranger = (u.replace("127.0.0.1", "localhost") for u in (allowed, stranger))
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}",
            data_dir=str(tmp_path / "var"),
            webchat_allowed_origins=[allowed],
            _env_file=None,  # type: ignore[call-arg]
        )
        with LiveServer(create_app(settings, engine=EchoEngine())) as url:
            careline["url"] = url
            yield allowed, stranger


def test_widget_chats_on_an_allowed_site_and_is_refused_elsewhere(
    sites: tuple[str, str],
) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import WebSocket, expect, sync_playwright

    allowed, stranger = sites
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page()
        sockets: list[str] = []
        frames: list[str] = []

        def watch(ws: WebSocket) -> None:
            sockets.append(ws.url)
            ws.on("framereceived", lambda frame: frames.append(str(frame)))

        page.on("websocket", watch)
        complaints: list[str] = []
        page.on("pageerror", lambda e: complaints.append(str(e)))
        page.on("console", lambda m: complaints.append(m.text))
        page.goto(allowed)
        page.get_by_role("button", name="Chat with us").click()
        chat = page.frame_locator("iframe[title='Support chat']")
        chat.get_by_label("Your message").fill("hello from the shop")
        chat.get_by_role("button", name="Send").click()
        expect(chat.locator("#log")).to_contain_text("echo: hello from the shop", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "widget-on-allowed-site.png"))
        assert sockets and all("/chat/ws" in url and "token" not in url for url in sockets)
        assert any("echo: hello from the shop" in str(f) for f in frames), "sent over the socket"
        assert not [c for c in complaints if "Content Security Policy" in c]

        page.goto(stranger)
        page.get_by_role("button", name="Chat with us").click()
        framed = page.frame_locator("iframe[title='Support chat']")
        expect(framed.locator("#log")).to_have_count(0, timeout=5_000)
        assert any("frame-ancestors" in c and "blocked" in c for c in complaints)
        browser.close()
