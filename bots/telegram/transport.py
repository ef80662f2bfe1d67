"""python-telegram-bot's requests over aiohttp: PTB's documented `BaseRequest` extension point.

PTB's default transport is httpx, whose generic request stack (httpx, httpcore, anyio) cost
about a fifth of a new chat's turn when the reply goes through the Bot API (issue 18's
profile). The Bot object, its methods, their parameters and errors stay PTB's; only the
bytes go through aiohttp's client, which the Slack SDK already uses. The body is what PTB's
own transport sends: form fields, or multipart when a file is attached.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

DEFAULT_TIMEOUT = 5.0  # seconds to connect, and to read an answer (PTB's defaults)
MEDIA_WRITE_TIMEOUT = 20.0  # seconds for a request that uploads a file


class AiohttpRequest(BaseRequest):
    """A pooled aiohttp session for the Bot API; made in `initialize`, closed in `shutdown`."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 64,
        pool_timeout: float | None = 10.0,
        connect_timeout: float | None = DEFAULT_TIMEOUT,
        read_timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._pool_size = connection_pool_size
        self._pool_timeout = pool_timeout
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": self.USER_AGENT}
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("the Telegram request is not initialized")
        data: aiohttp.FormData | dict[str, str] | None = None
        files = request_data.multipart_data if request_data else None
        if request_data is not None:
            data = (
                _form(request_data.json_parameters, files)
                if files
                else request_data.json_parameters
            )
        timeout = self._timeout(read_timeout, write_timeout, connect_timeout, pool_timeout, files)
        try:
            async with session.request(method, url, data=data, timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc

    def _timeout(
        self, read: Any, write: Any, connect: Any, pool: Any, files: object
    ) -> aiohttp.ClientTimeout:
        """PTB's four timeouts as aiohttp's: waiting for a pooled connection counts towards
        connecting; writing a body and reading the answer towards the socket read."""
        read = self._read_timeout if read is BaseRequest.DEFAULT_NONE else read
        connect = self._connect_timeout if connect is BaseRequest.DEFAULT_NONE else connect
        pool = self._pool_timeout if pool is BaseRequest.DEFAULT_NONE else pool
        if write is BaseRequest.DEFAULT_NONE:
            write = MEDIA_WRITE_TIMEOUT if files else self._read_timeout
        waits = [t for t in (connect, pool) if t is not None]
        reads = [t for t in (read, write) if t is not None]
        return aiohttp.ClientTimeout(
            total=None,
            connect=sum(waits) if len(waits) == 2 else None,
            sock_read=sum(reads) if len(reads) == 2 else None,
        )


def _form(fields: dict[str, str], files: dict[str, Any]) -> aiohttp.FormData:
    """Multipart form: the method's fields, then each file part as PTB names it."""
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
