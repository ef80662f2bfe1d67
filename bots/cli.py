"""The `careline` command."""

from __future__ import annotations

import asyncio

import typer

from bots.cli_admin import admin_app
from bots.cli_chat import chat
from bots.cli_nlu import nlu_app
from bots.cli_telegram import telegram_app
from core.config import Settings

app = typer.Typer(help="Careline: a chat-first customer-support bot.", no_args_is_help=True)
app.command("chat")(chat)
app.add_typer(admin_app, name="admin")
app.add_typer(nlu_app, name="nlu")
app.add_typer(telegram_app, name="telegram")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on."),
    port: int | None = typer.Option(None, help="Port to listen on."),
    role: str | None = typer.Option(None, help="all, web or relay (default from settings)."),
) -> None:
    """Run Careline: web (webhooks, admin API, web chat) and the outbox relay."""
    from bots.server import run

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if role is not None:
        overrides["role"] = role
    run(Settings(**overrides))  # type: ignore[arg-type]


@app.command("migrate")
def migrate_command() -> None:
    """Bring the database schema up to date."""
    from core.db.database import Database
    from core.db.migrate import head_revision, migrate

    settings = Settings()

    async def go() -> None:
        db = Database(settings.database_url)
        try:
            await migrate(db)
        finally:
            await db.dispose()

    asyncio.run(go())
    typer.echo(f"database at revision {head_revision()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
