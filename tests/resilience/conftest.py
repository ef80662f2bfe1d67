"""The real `careline serve` on SQLite against the fake Bot API and Slack, as subprocesses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from resilience.fuzz import SLACK_SECRET, SLACK_TOKEN
from resilience.harness import telegram_env
from resilience.procs import Fake, Processes, Server, start_fake, workspace


@dataclass
class Running:
    server: Server
    fake: Fake
    database: Path

    @property
    def url(self) -> str:
        """The server's database, for `core` services run from the test."""
        return f"sqlite+aiosqlite:///{self.database}"

    @property
    def webhook(self) -> str:
        return f"{self.server.url}/telegram/webhook"

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        """Run SQL on the server's database file from outside (faults, checks)."""
        with sqlite3.connect(self.database, timeout=30) as conn:
            return list(conn.execute(statement).fetchall())


@pytest.fixture(scope="session")
def running() -> Iterator[Running]:
    procs = Processes()
    with workspace() as workdir:
        try:
            fake = start_fake(procs, "tests.fakes.telegram_api", workdir)
            slack = start_fake(procs, "tests.fakes.slack_api", workdir)
            database = workdir / "careline.db"
            env = telegram_env(
                f"sqlite+aiosqlite:///{database}",
                fake,
                workdir,
                SLACK_BOT_TOKEN=SLACK_TOKEN,
                SLACK_SIGNING_SECRET=SLACK_SECRET,
                SLACK_API_URL=f"{slack.url}/api/",
            )
            server = Server(procs, env, workdir)
            server.start()
            server.wait_ready()
            yield Running(server, fake, database)
        finally:
            procs.close()
