"""Another process holding SQLite's write lock slows our writes, never the whole server."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bots.server import ADMIN_API_PATH
from core.config import Settings
from tests.server.support import running

HOLD_SECONDS = 2.0

# Another process takes the write lock, says so, holds it, then lets go.
HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


class EchoEngine:
    async def handle_turn(self, said: object) -> list[object]:
        return []


async def test_healthz_answers_at_once_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "careline.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{path}")  # type: ignore[call-arg]
    with running(settings, EchoEngine()) as server:
        admin_key = server.app.state.runtime.admin_key
        assert admin_key
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            assert (await client.get("/readyz")).status_code == 200
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLDER, str(path), str(HOLD_SECONDS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "locked"
                locked_at = time.monotonic()
                write = asyncio.create_task(
                    client.post(
                        f"{ADMIN_API_PATH}/agents",
                        json={"name": "Grace", "email": "grace@example.com"},
                        headers={"Authorization": f"Bearer {admin_key}"},
                    )
                )
                await asyncio.sleep(0.1)  # the write is now waiting for the lock
                latencies = []
                while time.monotonic() - locked_at < HOLD_SECONDS - 0.3 and len(latencies) < 20:
                    started = time.perf_counter()
                    health = await client.get("/healthz")
                    latencies.append(time.perf_counter() - started)
                    assert health.status_code == 200
                    await asyncio.sleep(0.05)
                created = await write
                written_after = time.monotonic() - locked_at
            finally:
                holder.wait(10)
    median, worst = statistics.median(latencies), max(latencies)
    print(f"/healthz under a held lock: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert worst < 0.2  # generous for a noisy two-core machine; typically a few ms
    assert median < 0.05
    assert len(latencies) >= 10
    assert created.status_code == 201, created.text
    assert written_after >= HOLD_SECONDS - 0.1  # it waited for the other process, then wrote
