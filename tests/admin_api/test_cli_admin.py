"""`careline admin create-key` / `revoke-key` against a real database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bots.cli_admin import admin_app
from core.db.database import Database
from core.db.keys import authenticate
from tests.conftest import run_in_thread


async def _who(url: str, key: str) -> tuple[str, int | None] | None:
    db = Database(url)
    try:
        async with db.uow() as uow:
            caller = await authenticate(uow.session, key)
            return None if caller is None else (caller.role, caller.agent_id)
    finally:
        await db.dispose()


@pytest.fixture
def runner(db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CARELINE_DATABASE_URL", db.url.render_as_string(hide_password=False))
    return CliRunner()


def test_create_key_prints_a_working_admin_key_once(db: Database, runner: CliRunner) -> None:
    result = runner.invoke(admin_app, ["create-key", "--role", "admin", "--name", "ops"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("clk_")
    url = db.url.render_as_string(hide_password=False)
    assert run_in_thread(_who(url, key)) == ("admin", None)
    revoked = runner.invoke(admin_app, ["revoke-key", "1"])
    assert revoked.exit_code == 0, revoked.output
    assert run_in_thread(_who(url, key)) is None


def test_an_agent_key_needs_a_real_agent(runner: CliRunner) -> None:
    result = runner.invoke(admin_app, ["create-key", "--role", "agent", "--name", "grace"])
    assert result.exit_code == 2
    assert "agent" in result.stderr
    unknown = runner.invoke(
        admin_app, ["create-key", "--role", "agent", "--name", "g", "--agent-id", "42"]
    )
    assert unknown.exit_code == 2
    wrong_role = runner.invoke(admin_app, ["create-key", "--role", "root", "--name", "x"])
    assert wrong_role.exit_code != 0
