"""The `careline` command."""

from __future__ import annotations

import asyncio
from importlib import import_module
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from bots.cli_chat import chat
from core.config import Settings


class CommandGroups(TyperGroup):
    """`careline`'s command groups, each imported when it is used (the way Typer's own
    `typer` command adds `run`): `careline serve` starts without their imports (rich, the
    Watson mapping), a tenth of its start-up."""

    groups = {
        "admin": ("bots.cli_admin", "admin_app"),
        "nlu": ("bots.cli_nlu", "nlu_app"),
        "telegram": ("bots.cli_telegram", "telegram_app"),
    }

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.groups if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.groups and cmd_name not in self.commands:
            module, attribute = self.groups[cmd_name]
            group = typer.main.get_group(getattr(import_module(module), attribute))
            group.name = cmd_name
            self.commands[cmd_name] = group
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    help="Careline: a chat-first customer-support bot.", no_args_is_help=True, cls=CommandGroups
)
app.command("chat")(chat)


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
