"""Web-chat uploads: read only for a known visitor, streamed with a cap, typed by their bytes.

The route checks the visitor before calling `store_upload`, so a stranger's body is never
read. The body is then parsed as it arrives and refused (413) as soon as it passes the cap,
before it is all sent. The type a browser declares is a guess from the file name, and any
client can declare anything, so the stored type is the one the first bytes prove: a file
that is none of the kinds we accept, or is not what it claims to be, is refused with 415.
"""

from __future__ import annotations

import asyncio
import codecs
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

MULTIPART_SLACK = 16 * 1024  # the boundaries and part headers around the one file
SNIFF_BYTES = 4096
CHUNK = 256 * 1024
KINDS = "a photo (PNG, JPEG, GIF, WebP, HEIC), a PDF or a text file"

# The signatures of https://mimesniff.spec.whatwg.org/#matching-an-image-type-pattern (and
# PDF's "%PDF-"); HEIC is the ISO BMFF "ftyp" box of iPhone photos.
MAGIC = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (8, b"WEBP", "image/webp"),  # after "RIFF" and the length
    (4, b"ftypheic", "image/heic"),
    (4, b"ftypheix", "image/heic"),
    (4, b"ftypmif1", "image/heic"),
    (0, b"%PDF-", "application/pdf"),
]


class Refused(Exception):
    """An upload the visitor is told about: the status and the sentence the page shows."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error}, status_code=self.status)


class _TooLarge(MultiPartException):
    """Raised from inside the body stream; Starlette's parser then closes its spool files."""


@dataclass(frozen=True)
class StoredUpload:
    file_id: str
    name: str
    mime_type: str
    size: int

    @property
    def is_photo(self) -> bool:
        return self.mime_type.startswith("image/")


def sniff(head: bytes) -> str | None:
    """The type the first bytes prove, or None for a kind we do not accept."""
    for offset, magic, mime in MAGIC:
        if head[offset : offset + len(magic)] == magic and (offset != 8 or head[:4] == b"RIFF"):
            return mime
    if head and b"\0" not in head:
        try:  # not final: the head may end inside a character
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            return None
        return "text/plain"
    return None


def agrees(declared: str | None, sniffed: str) -> bool:
    """Whether the declared type fits the bytes (no type or a generic one always does)."""
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in ("", "application/octet-stream", sniffed):
        return True
    return sniffed == "text/plain" and declared.startswith("text/")


async def store_upload(request: Request, folder: Path, cap: int) -> StoredUpload:
    """Parse the form's `file` from the body as it arrives and keep it under `folder`."""
    too_large = Refused(413, f"That file is too large: the limit is {_size(cap)}.")
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
        return await _keep(file, folder, cap, too_large)
    finally:
        await form.close()


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge("too large")
        yield chunk


async def _keep(file: UploadFile, folder: Path, cap: int, too_large: Refused) -> StoredUpload:
    head = await file.read(SNIFF_BYTES)
    mime = sniff(head)
    if mime is None or not agrees(file.content_type, mime):
        raise Refused(415, f"That kind of file cannot be sent here: send {KINDS}.")
    await file.seek(0)
    file_id = uuid.uuid4().hex
    size = await asyncio.to_thread(_copy, file.file, folder / file_id, cap)
    if size is None:
        raise too_large
    return StoredUpload(file_id, (file.filename or "file")[:200], mime, size)


def _copy(source: BinaryIO, target: Path, cap: int) -> int | None:
    """Copy `source` to `target`; None, and no file, when it is larger than `cap`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > cap:
                break
            out.write(chunk)
    if size > cap:
        target.unlink()
        return None
    return size


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length") or 0)
    except ValueError:
        return 0


def _size(size: int) -> str:
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{-(-size // 1024)} KB"
