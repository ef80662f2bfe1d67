"""`careline telegram ...`: register or remove the webhook with Telegram."""

from __future__ import annotations

import asyncio

import typer

from core.config import Settings

telegram_app = typer.Typer(help="Telegram: webhook registration.", no_args_is_help=True)


@telegram_app.command("set-webhook")
def set_webhook(
    url: str = typer.Argument(
        ..., help="Public HTTPS URL, e.g. https://example.org/telegram/webhook"
    ),
) -> None:
    """Register URL as the bot's webhook, with TELEGRAM_WEBHOOK_SECRET as its secret token."""
    from bots.telegram import register_webhook

    settings = Settings()
    if settings.telegram_bot_token is None:
        typer.echo("TELEGRAM_BOT_TOKEN is not set", err=True)
        raise typer.Exit(2)
    try:
        info = asyncio.run(register_webhook(settings, url))
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"webhook set: {info['url']} (pending updates: {info['pending_update_count']})")


@telegram_app.command("delete-webhook")
def delete_webhook() -> None:
    """Remove the webhook (Telegram keeps pending updates for polling)."""
    from bots.telegram import unregister_webhook

    settings = Settings()
    if settings.telegram_bot_token is None:
        typer.echo("TELEGRAM_BOT_TOKEN is not set", err=True)
        raise typer.Exit(2)
    asyncio.run(unregister_webhook(settings))
    typer.echo("webhook deleted")
