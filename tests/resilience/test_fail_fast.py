"""A broken fake or a dead process fails the scenario at once, with its reason.

Before, the Telegram fake read its contract on the first call (every call then answered 500)
and nothing watched the fakes, so a scenario waited out its deadlines (up to 900 s) for
replies that could never come, and then reported lost messages instead of the cause.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resilience.harness import Broken, supervised, telegram_env, wait_until
from resilience.procs import SECRET, TOKEN, Processes, Server, start_fake, workspace
from resilience.telegram_load import Load, plan


@pytest.fixture
def procs() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with workspace() as path:
        yield path


def never() -> bool:
    return False


def test_fake_that_cannot_read_its_contract_fails_to_start_at_once(
    procs: Processes, workdir: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"telegram_bot_api_that_is_not_there\.json"):
        start_fake(procs, "tests.resilience.fake_without_contract", workdir)
    assert time.monotonic() - started < 30


def test_fake_that_exits_stops_the_scenario_at_once(procs: Processes, workdir: Path) -> None:
    fake = start_fake(procs, "tests.fakes.telegram_api", workdir)

    async def scenario() -> bool:
        os.kill(fake.process.pid, signal.SIGKILL)  # our own fake, by its pid
        return await wait_until(never, 600)

    started = time.monotonic()
    with pytest.raises(Broken, match="telegram_api exited unexpectedly"):
        asyncio.run(supervised(procs, scenario()))
    assert time.monotonic() - started < 10


def test_process_ended_on_purpose_is_no_trouble(procs: Processes, workdir: Path) -> None:
    fake = start_fake(procs, "tests.fakes.telegram_api", workdir)
    procs.let_go(fake.process)
    fake.process.kill()
    fake.process.wait(10)
    assert procs.trouble() is None


@pytest.mark.slow
def test_error_inside_a_fake_stops_the_telegram_load_at_once_with_its_reason(
    procs: Processes, workdir: Path
) -> None:
    """The server's replies go through the fake's sendMessage, which raises: every update is
    answered 500 and redelivered. The load stops within seconds, naming the fake's error."""
    fake = start_fake(procs, "tests.resilience.fake_that_raises", workdir)
    env = telegram_env(
        f"sqlite+aiosqlite:///{workdir / 'careline.db'}",
        fake,
        workdir,
        CARELINE_TELEGRAM_REPLY_IN_WEBHOOK_ANSWER="false",
    )
    server = Server(procs, env, workdir)
    server.start()
    server.wait_ready()
    load = Load(
        f"{server.url}/telegram/webhook",
        SECRET,
        plan(4, 2),
        f"{fake.url}/bot{TOKEN}",
        deadline_seconds=600,
    )
    started = time.monotonic()
    with pytest.raises(Broken, match='KeyError: "the fake\'s own bug"') as broken:
        asyncio.run(supervised(procs, load.run()))
    assert time.monotonic() - started < 30, broken.value
    assert "sendMessage" in str(broken.value)
