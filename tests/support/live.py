"""Run an ASGI app with uvicorn on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from tests.support.pgcluster import free_port


class LiveServer:
    """`with LiveServer(app) as base_url:` — the app's lifespan runs on the server's own loop."""

    def __init__(self, app: Any, *, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level=log_level, lifespan="on",
            ws="websockets-sansio",
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server failed to start; see the log above")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start within 20 s")
            time.sleep(0.02)
        return self.url

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
