"""PTB's requests over aiohttp: PTB's errors for a dead or slow Bot API, PTB's form body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from telegram import InputFile
from telegram.error import NetworkError, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter

from bots.telegram.transport import AiohttpRequest
from tests.support.aiohttp_app import served
from tests.support.pgcluster import free_port


@pytest.fixture
async def api() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    """A Bot API stand-in that records what it got; `/slow` answers after 2 s."""
    seen: list[dict[str, object]] = []

    async def method(request: web.Request) -> web.Response:
        if request.match_info["name"] == "slow":
            await asyncio.sleep(2)
        form = await request.post()
        seen.append(
            {
                "type": request.content_type,
                "fields": {k: v if isinstance(v, str) else v.file.read() for k, v in form.items()},
            }
        )
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/bot/{name}", method)
    async with served(app) as url:
        yield f"{url}/bot", seen


async def test_fields_go_as_a_form_and_files_as_multipart(
    api: tuple[str, list[dict[str, object]]],
) -> None:
    url, seen = api
    async with AiohttpRequest() as request:
        plain = RequestData(
            [
                RequestParameter.from_input("chat_id", 42),
                RequestParameter.from_input("text", "héllo"),
            ]
        )
        status, body = await request.do_request(f"{url}/sendMessage", "POST", plain)
        assert (status, body) == (200, b'{"ok": true, "result": true}')
        upload = InputFile(b"%PDF-1.4 receipt", filename="receipt.pdf")
        with_file = RequestData(
            [
                RequestParameter.from_input("chat_id", 42),
                RequestParameter.from_input("document", upload),
            ]
        )
        await request.do_request(f"{url}/sendDocument", "POST", with_file)
    assert seen[0] == {
        "type": "application/x-www-form-urlencoded",
        "fields": {"chat_id": "42", "text": "héllo"},
    }
    assert seen[1]["type"] == "multipart/form-data"
    assert seen[1]["fields"] == {"chat_id": "42", "document": b"%PDF-1.4 receipt"}


async def test_a_dead_api_is_a_network_error_and_a_slow_one_a_timeout(
    api: tuple[str, list[dict[str, object]]],
) -> None:
    url, _ = api
    async with AiohttpRequest(read_timeout=0.2) as request:
        with pytest.raises(NetworkError, match="aiohttp"):
            await request.do_request(f"http://127.0.0.1:{free_port()}/bot/getMe", "POST")
        with pytest.raises(TimedOut):
            await request.do_request(f"{url}/slow", "POST")


async def test_a_request_before_initialize_is_refused() -> None:
    with pytest.raises(RuntimeError, match="not initialized"):
        await AiohttpRequest().do_request("http://127.0.0.1:1/bot/getMe", "POST")
