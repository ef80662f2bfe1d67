"""The one ASGI app: probes, metrics, roles, the start-up banner, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from bots.relay import Delivery, Handlers
from bots.server import Runtime, banner
from core import events
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.model import utcnow
from dialogs.turn import Reply, UserSaid
from tests.server.support import free_port, running

ROOT = Path(__file__).resolve().parents[2]


class EchoEngine:
    async def handle_turn(self, said: UserSaid) -> list[Reply]:
        return [Reply(said.text)]


def sqlite_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/careline.db", **overrides)  # type: ignore[arg-type]


async def test_probes_and_metrics_answer_on_a_fresh_sqlite_database(tmp_path: Path) -> None:
    with running(sqlite_settings(tmp_path), EchoEngine()) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = await client.get("/healthz")
            ready = await client.get("/readyz")
            metrics = await client.get("/metrics")
    assert health.json() == {"status": "alive"}
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert "careline_webhook_requests_total" in metrics.text
    assert health.headers["x-request-id"]


async def test_telegram_webhook_is_not_served_without_a_token(tmp_path: Path) -> None:
    with running(sqlite_settings(tmp_path), EchoEngine()) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.post("/telegram/webhook", json={"update_id": 1})
    assert response.status_code == 404


@pytest.mark.parametrize(("role", "relays"), [("all", True), ("relay", True), ("web", False)])
async def test_role_decides_whether_this_process_relays_the_outbox(
    pg_db: Database, role: str, relays: bool
) -> None:
    seen: list[str] = []

    async def record(delivery: Delivery) -> str:
        seen.append(delivery.event_type)
        return "ok"

    def handlers(_: Runtime) -> Handlers:
        registry = Handlers()
        registry.add(events.NoteAdded, "record", record)
        return registry

    url = pg_db.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, role=role)  # type: ignore[arg-type]
    with running(settings, EchoEngine(), relay_handlers=handlers) as server:
        db = Database(settings.database_url)
        async with db.uow() as uow:
            now = utcnow()
            row = {
                "event_type": "NoteAdded",
                "payload": {"ticket_id": 1, "message_id": 1},
                "status": "pending",
                "created_at": now,
                "available_at": now,
                "attempts": 0,
            }
            await uow.session.execute(insert(t.outbox), [row])
            await uow.commit()
        await db.dispose()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=server.url) as client:
            webhook = await client.get("/healthz")
    assert webhook.status_code == 200
    assert bool(seen) is relays


def serve_subprocess(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CARELINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/careline.db",
        "CARELINE_PORT": str(free_port()),
        "CARELINE_DATA_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, "-m", "bots.cli", "serve", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("role", ["web", "relay"])
def test_sqlite_refuses_split_roles(tmp_path: Path, role: str) -> None:
    result = serve_subprocess(tmp_path, "--role", role)
    assert result.returncode != 0
    assert "needs PostgreSQL" in result.stderr + result.stdout


def test_a_second_server_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    with running(sqlite_settings(tmp_path), EchoEngine()):
        result = serve_subprocess(tmp_path)
    assert result.returncode != 0
    assert "allows one server process" in result.stderr + result.stdout


def test_banner_says_what_runs_and_where() -> None:
    text = banner(
        Settings(
            telegram_bot_token="1:x",  # type: ignore[arg-type]
            telegram_webhook_secret="abcdef",  # type: ignore[arg-type]
            public_url="https://support.example.org",
            database_url="postgresql+asyncpg://careline:hunter2@db/careline",
        )
    )
    assert "webhook https://support.example.org/telegram/webhook (secret set)" in text
    assert "relay       in this process" in text
    assert "hunter2" not in text and "***" in text
    relay_only = banner(Settings(role="relay"))
    assert "web         off" in relay_only


def test_careline_serve_starts_embedded_on_sqlite_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARELINE_", "TELEGRAM_", "SLACK_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "bots.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=35)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # uvicorn re-raises the SIGTERM it handled once the app has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert "Careline — role all" in output
    assert "telegram    off" in output
    assert (tmp_path / "careline.db").exists()
