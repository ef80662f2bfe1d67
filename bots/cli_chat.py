"""`careline chat`: the terminal channel on the embedded defaults."""

from __future__ import annotations

import asyncio

import typer


def chat(
    user: str | None = typer.Option(None, help="Customer user id (default: your login name)."),
    name: str = typer.Option("", help="Display name the bot greets you with."),
    language: str = typer.Option("en", help="Language code for the bot's texts."),
) -> None:
    """Talk to the bot in the terminal as a customer (SQLite and local NLU by default)."""
    from bots.terminal import chat_loop
    from core.config import Settings
    from core.db.database import Database
    from core.db.migrate import migrate
    from dialogs.factory import build_engine
    from dialogs.nlu import default_nlu

    settings = Settings()

    async def go() -> None:
        db = Database(settings.database_url)
        try:
            await migrate(db)
            nlu = default_nlu(settings.nlu_intents_file, threshold=settings.nlu_threshold)
            engine = build_engine(settings, db, nlu)
            if engine.knowledge is not None:  # loaded once: a short session follows no edits
                await engine.knowledge.start()
            await chat_loop(engine, user_id=user, name=name, language=language)
        finally:
            await db.dispose()

    asyncio.run(go())
