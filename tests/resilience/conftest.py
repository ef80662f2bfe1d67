"""The real `careline serve` on SQLite against the fake Bot API, both as subprocesses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience.harness import telegram_env
from resilience.procs import Fake, Processes, Server, start_fake, workspace


@dataclass
class Running:
    server: Server
    fake: Fake
    database: Path

    @property
    def webhook(self) -> str:
        return f"{self.server.url}/telegram/webhook"

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """Run SQL on the server's database file from outside (faults, checks)."""
        with sqlite3.connect(self.database, timeout=30) as conn:
            return list(conn.execute(statement).fetchall())


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    procs = Processes()
    with workspace() as workdir:
        try:
            fake = start_fake(procs, "tests.fakes.telegram_api", workdir)
            database = workdir / "careline.db"
            env = telegram_env(f"sqlite+aiosqlite:///{database}", fake, workdir)
            server = Server(procs, env, workdir)
            server.start()
            server.wait_ready()
            yield Running(server, fake, database)
        finally:
            procs.close()
