"""`careline serve` starts small: the default NLU is served without scikit-learn or scipy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.startup_bench import (
    RSS_GOAL_MB,
    careline_command,
    free_port,
    resident_mb,
    serve_environment,
    wait_ready,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_first_start_is_ready_without_scikit_learn_and_stays_small(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        careline_command(),
        cwd=tmp_path,
        env=serve_environment(tmp_path, port, cold_bytecode=False),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(process, f"http://127.0.0.1:{port}/readyz", timeout=120)
        # Their compiled extensions are mapped into the process once either is imported.
        mapped = Path(f"/proc/{process.pid}/maps").read_text()
        rss = resident_mb(process.pid)
    finally:
        process.terminate()
        process.wait(30)

    assert "/sklearn/" not in mapped
    assert "/scipy/" not in mapped
    assert not (tmp_path / "var" / "nlu").exists()  # the shipped model was used, not trained
    assert rss <= RSS_GOAL_MB


def test_serve_imports_no_command_group_it_does_not_run() -> None:
    code = (
        "import sys, bots.cli\n"
        "print(sorted(m for m in ('rich', 'bots.cli_nlu', 'bots.cli_admin') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_command_groups_load_when_used() -> None:
    from typer.testing import CliRunner

    from bots.cli import app

    listing = CliRunner().invoke(app, ["--help"])
    nlu = CliRunner().invoke(app, ["nlu", "--help"])

    assert all(name in listing.output for name in ("serve", "admin", "nlu", "telegram"))
    assert "train" in nlu.output
    assert "--install-completion" not in nlu.output  # a sub-group, as add_typer makes it


def test_staff_apps_and_sendgrid_load_at_their_first_use(tmp_path: Path) -> None:
    # A new interpreter: what start-up imports, not what other tests imported before.
    code = f"""
import sys
from starlette.testclient import TestClient
from bots.server import create_app
from core.config import Settings

staff = ("admin_api.app", "admin_api.console.app", "sendgrid")
settings = Settings(database_url="sqlite+aiosqlite:///{tmp_path}/careline.db",
                    data_dir="{tmp_path}/var")
with TestClient(create_app(settings)) as client:
    ready = client.get("/readyz").status_code
    at_start = [m for m in staff if m in sys.modules]
    api = client.get("/api/v1/me").status_code
    console = client.get("/console/sign-in").status_code
    print(ready, at_start, api, console, [m for m in staff[:2] if m in sys.modules])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.split("\n")[-2] == (
        "200 [] 401 200 ['admin_api.app', 'admin_api.console.app']"
    )


async def test_an_app_built_on_first_use_is_built_once_for_concurrent_first_requests() -> None:
    import asyncio

    from starlette.responses import PlainTextResponse
    from starlette.types import ASGIApp

    from bots.server import BuiltOnFirstUse

    builds: list[int] = []

    def make() -> ASGIApp:
        builds.append(1)
        return PlainTextResponse("built")

    app = BuiltOnFirstUse(make)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await asyncio.gather(*(app(scope, receive, send) for _ in range(5)))  # type: ignore[arg-type]

    assert builds == [1]
    assert [m["body"] for m in sent if m["type"] == "http.response.body"] == [b"built"] * 5
