"""`GET /files/{id}`: a stored file, for whoever holds a valid signed link (core.files).

The answer is always a download (`Content-Disposition: attachment`) with the type the bytes
proved, `nosniff` and a sandboxing policy, so a file can never run as a page of ours; it is
never cached by a shared cache. A link that is forged, altered or expired is refused with 403,
a file erased since with 404.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Response

from bots.relay import Delivery, Handlers, Skip
from core import events
from core.db.files import Blobs
from core.files import FileLinks
from core.ports import FileStore

EXPIRED = "This link has expired or is not valid: open the ticket again for a fresh one."


def download_headers(name: str) -> dict[str, str]:
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "")
    return {
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }


def files_router(store: FileStore, links: Callable[[], FileLinks | None]) -> APIRouter:
    router = APIRouter()

    @router.get(FileLinks.PATH + "{file_id}", include_in_schema=False)
    async def stored_file(file_id: str, expires: str = "", signature: str = "") -> Response:
        signer = links()
        if signer is None:
            raise HTTPException(503, "the server is starting; try again in a moment")
        if not signer.valid(file_id, expires, signature):
            raise HTTPException(403, EXPIRED)
        found = await store.read(file_id)
        if found is None:
            raise HTTPException(404, "This file is no longer kept.")
        file, content = found
        return Response(content, media_type=file.mime_type, headers=download_headers(file.name))

    return router


class ObjectEraser:
    """Relay handler deleting an erased customer's files from object storage, after the
    erasure (which deleted their rows) committed."""

    def __init__(self, blobs: Blobs) -> None:
        self.blobs = blobs

    def register(self, handlers: Handlers) -> None:
        handlers.add(events.CustomerErased, "files.erase_objects", self.erase)

    async def erase(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, events.CustomerErased)
        if not event.file_ids:
            raise Skip("no stored files")
        deleted = await self.blobs.delete(list(event.file_ids))
        return f"{deleted} objects deleted"
