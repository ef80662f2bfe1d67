"""`careline admin ...`: API keys for the admin API, from the command line."""

from __future__ import annotations

import asyncio
from enum import StrEnum

import typer

from core.config import Settings

admin_app = typer.Typer(help="Manage admin API keys.", no_args_is_help=True)


class KeyRole(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"


@admin_app.command("create-key")
def create_key_command(
    role: KeyRole = typer.Option(..., help="admin: everything; agent: work tickets."),
    name: str = typer.Option(..., help="Who or what uses the key (shown in listings)."),
    agent_id: int | None = typer.Option(None, help="The agent an agent key speaks for."),
) -> None:
    """Create an API key and print it. It is shown this once; only its hash is stored."""
    from core.db.database import Database
    from core.db.keys import create_key
    from core.errors import DomainError

    settings = Settings()

    async def go() -> str:
        db = Database(settings.database_url)
        try:
            async with db.uow() as uow:
                new = await create_key(uow.session, name=name, role=role.value, agent_id=agent_id)
                await uow.commit()
                return new.key
        finally:
            await db.dispose()

    try:
        key = asyncio.run(go())
    except DomainError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(key)
    typer.echo("Keep it safe: it cannot be shown again.", err=True)


@admin_app.command("revoke-key")
def revoke_key_command(key_id: int = typer.Argument(..., help="The key's id.")) -> None:
    """Revoke an API key at once."""
    from core.db.database import Database
    from core.db.keys import revoke_key
    from core.errors import DomainError

    settings = Settings()

    async def go() -> None:
        db = Database(settings.database_url)
        try:
            async with db.uow() as uow:
                await revoke_key(uow.session, key_id)
                await uow.commit()
        finally:
            await db.dispose()

    try:
        asyncio.run(go())
    except DomainError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"key {key_id} revoked")
