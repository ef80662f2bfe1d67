"""Run the real Careline app with uvicorn in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from bots.server import create_app
from core.config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """uvicorn serving `create_app(settings, engine=...)` on its own loop and thread."""

    def __init__(
        self, settings: Settings, engine: Any = None, *, port: int | None = None, **options: Any
    ) -> None:
        self.port = port or free_port()
        self.app = create_app(settings, engine=engine, **options)
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="httptools",
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@contextmanager
def running(
    settings: Settings, engine: Any = None, *, port: int | None = None, **options: Any
) -> Iterator[ServerThread]:
    server = ServerThread(settings, engine, port=port, **options).start()
    try:
        yield server
    finally:
        server.stop()
