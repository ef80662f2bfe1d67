"""Every HTML page the server serves carries a content security policy, nosniff and a
referrer policy; the web chat may be framed only by the sites allowed to embed it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.config import Settings
from dialogs.turn import Reply, UserSaid
from tests.server.support import running

SHOP = "https://shop.example"


class EchoEngine:
    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        return [Reply(said.text)]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, httpx.Response]:
    folder: Path = tmp_path_factory.mktemp("headers")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{folder}/careline.db",
        data_dir=str(folder / "var"),
        webchat_allowed_origins=[f"{SHOP}/"],  # as people write it: the slash is dropped
        _env_file=None,  # type: ignore[call-arg]
    )
    with running(settings, EchoEngine()) as server, httpx.Client(base_url=server.url) as client:
        return {path: client.get(path) for path in ("/chat", "/api/v1/docs", "/api/v1/redoc")}


@pytest.mark.parametrize("path", ["/chat", "/api/v1/docs", "/api/v1/redoc"])
def test_every_html_page_sends_security_headers(
    pages: dict[str, httpx.Response], path: str
) -> None:
    page = pages[path]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "same-origin"


def test_chat_page_may_be_framed_only_by_the_allowed_sites(
    pages: dict[str, httpx.Response],
) -> None:
    policy = pages["/chat"].headers["content-security-policy"]
    assert f"frame-ancestors 'self' {SHOP};" in policy
    assert "unsafe-inline" not in policy  # the page runs only its own files
    docs = pages["/api/v1/docs"].headers["content-security-policy"]
    assert "frame-ancestors 'none'" in docs
