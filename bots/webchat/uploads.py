"""Web-chat uploads: read only for a known visitor, streamed with a cap, typed by their bytes.

The route checks the visitor before calling `read_upload`, so a stranger's body is never
read. The body is then parsed as it arrives and refused (413) as soon as it passes the cap,
before it is all sent. The type a browser declares is a guess from the file name, and any
client can declare anything, so the stored type is the one the bytes prove (core.files): a
file that is none of the kinds we accept, or is not what it claims to be, is refused with 415.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from core.files import FileRefused, StoredFile, describe, too_large_text

MULTIPART_SLACK = 16 * 1024  # the boundaries and part headers around the one file


class Refused(Exception):
    """An upload the visitor is told about: the status and the sentence the page shows."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status)


class _TooLarge(MultiPartException):
    """Raised from inside the body stream; Starlette's parser then closes its spool files."""


async def read_upload(request: Request, cap: int, owner: str) -> tuple[StoredFile, bytes]:
    """Parse the form's `file` from the body as it arrives; what to store, and its bytes."""
    too_large = Refused(413, too_large_text(cap))
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Refused(415, "Send the file as multipart/form-data.")
    if _declared_length(request) > cap + MULTIPART_SLACK:
        raise too_large
    body = _capped(request.stream(), cap + MULTIPART_SLACK)
    try:
        form = await MultiPartParser(request.headers, body, max_files=1, max_fields=5).parse()
    except _TooLarge:
        raise too_large from None
    except MultiPartException as exc:
        raise Refused(400, f"That upload could not be read ({exc.message}).") from None
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise Refused(422, "Send the file in the form field `file`.")
        content = await file.read(cap + 1)
        try:
            stored = describe(
                content, name=file.filename, declared=file.content_type, limit=cap, owner=owner
            )
        except FileRefused as refusal:
            raise Refused(413 if refusal.too_large else 415, str(refusal)) from None
        return stored, content
    finally:
        await form.close()


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge("too large")
        yield chunk


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0
