"""The terminal channel: talk to the bot as a customer, one line per message."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable

from core.model import Channel
from dialogs.engine import DialogEngine
from dialogs.turn import Reply, UserSaid

QUIT = frozenset({"/quit", "/exit"})

ReadLine = Callable[[], Awaitable[str | None]]
Write = Callable[[str], None]


async def read_stdin() -> str | None:
    """The next line from standard input, or None at end of input (Ctrl-D)."""
    try:
        return await asyncio.to_thread(input, "you> ")
    except EOFError:
        return None


def render(reply: Reply) -> str:
    """Terminals have no buttons: choices become a numbered list (type the number)."""
    return "\n".join(f"bot> {line}" if line else "" for line in reply.as_plain_text().split("\n"))


async def chat_loop(
    engine: DialogEngine,
    *,
    read_line: ReadLine = read_stdin,
    write: Write = print,
    user_id: str | None = None,
    name: str = "",
    language: str = "en",
) -> int:
    """Greet, then talk until end of input or /quit; returns how many messages were sent."""
    user = user_id or getpass.getuser()
    write("Careline chat: type a message, a number to pick a choice, /help, or /quit.")

    async def say(text: str) -> None:
        said = UserSaid(
            channel=Channel.TERMINAL,
            user_id=user,
            chat_id=user,
            text=text,
            message_id=None,  # one reader, no redeliveries
            display_name=name or user,
            language=language,
        )
        for reply in await engine.handle_turn(said):
            write(render(reply))

    await say("/start")  # the bot speaks first, as in the web chat (not counted, not shown)
    sent = 0
    while True:
        line = await read_line()
        if line is None or line.strip().lower() in QUIT:
            return sent
        sent += 1
        await say(line)
