"""The API docs work with no internet: Swagger UI and ReDoc come from Careline itself.

The browser may reach 127.0.0.1 only; every other request is refused and recorded, so a page
that pulls a script, a style or a font from a CDN fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route

from bots.server import create_app
from core.config import Settings
from tests.support.browser import ARGS, ARTIFACTS, chromium_or_skip
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("docs")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'careline.db'}",
        data_dir=str(tmp / "var"),
        _env_file=None,  # type: ignore[call-arg]
    )
    with LiveServer(create_app(settings)) as url:
        yield url


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_careline_assets(server: str, page: str) -> None:
    html = httpx.get(f"{server}{page}", follow_redirects=True)
    assert html.status_code == 200
    assert "cdn" not in html.text.lower()
    assert "fonts.googleapis" not in html.text
    policy = html.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert html.headers["x-content-type-options"] == "nosniff"
    for asset in ("/api/v1/docs-assets/",):
        assert asset in html.text
    script = "swagger-ui-bundle.js" if page == "/docs" else "redoc.standalone.js"
    served = httpx.get(f"{server}/api/v1/docs-assets/{script}")
    assert served.status_code == 200
    assert len(served.content) > 100_000  # the real bundle, not a placeholder


def _offline_page(browser: Browser, server: str, refused: list[str]) -> Page:
    page = browser.new_page()
    local = urlsplit(server).netloc

    def only_local(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).netloc == local or url.startswith("data:"):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    page.route("**/*", only_local)
    return page


@pytest.mark.browser
def test_swagger_ui_lists_the_operations_offline(server: str) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    refused: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = _offline_page(browser, server, refused)
        page.goto(f"{server}/docs")
        operations = page.locator(".opblock-summary-path")
        expect(operations.first).to_be_visible(timeout=20_000)
        paths = {text.strip().replace("\u200b", "") for text in operations.all_inner_texts()}
        assert {"/tickets", "/agents"} <= paths, paths
        page.screenshot(path=str(ARTIFACTS / "docs-swagger-offline.png"))
        browser.close()
    assert refused == []


@pytest.mark.browser
def test_redoc_renders_offline(server: str) -> None:
    chromium = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    refused: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = _offline_page(browser, server, refused)
        page.goto(f"{server}/redoc")
        expect(page.get_by_text("Careline admin API").first).to_be_visible(timeout=20_000)
        expect(page.locator("[data-section-id^='operation/']").first).to_be_attached()
        page.screenshot(path=str(ARTIFACTS / "docs-redoc-offline.png"))
        browser.close()
    assert refused == []


def test_asset_folder_is_the_packages_own(server: str) -> None:
    import fastapi_offline

    bundle = Path(fastapi_offline.__file__).parent / "static" / "swagger-ui.css"
    served = httpx.get(f"{server}/api/v1/docs-assets/swagger-ui.css")
    assert served.content == bundle.read_bytes()
