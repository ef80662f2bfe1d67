"""`careline chat` end to end: typer's CliRunner feeds stdin, the real local NLU answers."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bots.cli_chat import chat


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    app.command()(chat)
    return app


def test_chat_in_the_terminal_opens_a_ticket_with_numbered_choices(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    monkeypatch.setenv("CARELINE_CACHE_DIR", str(tmp_path / "cache"))
    typed = "\n".join(
        [
            "hello",
            "/new",
            "The app crashes every time I open it",
            "2",  # the second category, by number
            "high",
            "skip",
            "1",  # Yes, open it
            "/quit",
        ]
    )
    result = CliRunner().invoke(app, ["--user", "ada", "--name", "Ada"], input=typed + "\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "bot> Hi Ada!" in out
    assert "bot> 1. Report a problem" in out
    assert "bot> 2. Technical" in out
    assert "Urgency: High" in out
    assert "Your ticket CR-1001 is open" in out


def test_chat_greets_before_the_customer_types(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    monkeypatch.setenv("CARELINE_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["--user", "ada", "--name", "Ada"], input="")
    assert result.exit_code == 0, result.output
    greeting = result.output.split("/quit.", 1)[1]
    assert "bot> Hi Ada!" in greeting
    assert "bot> 1. Report a problem" in greeting
    assert "/start" not in result.output


def test_chat_ends_quietly_at_end_of_input(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/chat.db")
    monkeypatch.setenv("CARELINE_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["--user", "ada"], input="when are you open?\n")
    assert result.exit_code == 0, result.output
    assert "Monday to Friday" in result.output
    assert "Did that help?" in result.output
