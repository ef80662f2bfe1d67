"""What each process keeps current from the database (the knowledge base's index, the intent
model): a refresh every few seconds, in one background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("careline.dialogs")


async def refresh_every(
    seconds: float, stopping: asyncio.Event, refresh: Callable[[], Awaitable[object]], what: str
) -> None:
    """Call `refresh` every `seconds` until `stopping` is set. A failed refresh (the database
    is away) is logged and tried again next time: the process serves what it has."""
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
            return
        try:
            await refresh()
        except Exception as exc:
            log.warning("%s: could not refresh (%s)", what, type(exc).__name__)
