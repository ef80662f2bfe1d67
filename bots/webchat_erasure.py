"""Erasure of web-chat uploads: the stored files of an erased customer's attachments.

The erasure service blanks the attachments in the database and names their files in
`CustomerErased`; the files themselves go after commit, through the relay, so a rolled-back
erasure never loses a file.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from bots.relay import Delivery, Handlers, Skip
from core import events

PREFIX = "webchat:"  # the file ids the web chat gives its uploads (bots/webchat.py)
STORED_NAME = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: never a path elsewhere


class UploadEraser:
    """Relay handler deleting the web-chat upload files of an erased customer."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def register(self, handlers: Handlers) -> None:
        handlers.add(events.CustomerErased, "webchat.erase_uploads", self.erase_uploads)

    async def erase_uploads(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, events.CustomerErased)
        names = [f.removeprefix(PREFIX) for f in event.file_ids if f.startswith(PREFIX)]
        if not names:
            raise Skip("no web-chat uploads")
        removed = await asyncio.to_thread(self._remove, names)
        return f"{removed} of {len(names)} files removed"

    def _remove(self, names: list[str]) -> int:
        removed = 0
        for name in names:
            path = self.folder / name
            if STORED_NAME.fullmatch(name) and path.is_file():
                path.unlink()
                removed += 1
        return removed
