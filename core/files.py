"""Stored files: attachments kept as bytes every replica can read, typed by their bytes,
and handed out only through short-lived signed links.

A file a customer sends (web chat upload, Telegram document or photo, Slack DM file) or an
agent attaches in a ticket's Slack thread is copied into the file store (the database in the
embedded default and on PostgreSQL, see core.db.files) under a random id. Messages keep the
id in their attachment (`stored_id`), never a URL with a secret. Staff read a file through a
link signed with the server's secret that expires (`FileLinks`); the route that serves it
(bots.files) answers with `Content-Disposition: attachment` and `nosniff`, so a file can never
run as a page of ours. Erasure deletes a customer's files with the rest of their data.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from urllib.parse import quote

KINDS = "a photo (PNG, JPEG, GIF, WebP, HEIC), a PDF, a text file or a voice note (OGG)"
SNIFF_BYTES = 4096

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
    (0, b"OggS", "audio/ogg"),  # Telegram's voice notes (Opus in Ogg)
]


def sniff(head: bytes) -> str | None:
    """The type the first bytes prove, or None for a kind we do not accept."""
    for offset, magic, mime in MAGIC:
        if head[offset : offset + len(magic)] == magic and (offset != 8 or head[:4] == b"RIFF"):
            return mime
    if head and b"\0" not in head:
        try:  # not final: the head may end inside a character
            codecs.getincrementaldecoder("utf-8")().decode(head[:SNIFF_BYTES], final=False)
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


def new_file_id() -> str:
    return uuid.uuid4().hex


def platform_file_id(platform: str, platform_id: str) -> str:
    """The stored id of a platform's file: the same file fetched twice (a retried update) is
    stored once."""
    return hashlib.sha256(f"{platform}:{platform_id}".encode()).hexdigest()[:32]


def safe_name(name: str | None, mime_type: str) -> str:
    """A file name for a download: no path, no control characters, at most 200 characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if c.isprintable() and c not in '"<>|:*?').strip(" .")
    if not base:
        base = "file" + EXTENSIONS.get(mime_type, "")
    return base[:200]


EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "audio/ogg": ".ogg",
}


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What is known of a stored file without reading its bytes."""

    id: str
    name: str
    mime_type: str
    size: int
    sha256: str
    owner: str | None = None  # "<channel>:<external id>" of the customer who sent it
    ticket_id: int | None = None  # the ticket it belongs to, when known

    @property
    def is_photo(self) -> bool:
        return self.mime_type.startswith("image/")

    def attachment(self, kind: str | None = None) -> dict[str, object]:
        """The attachment a message keeps for this file (dialogs.turn.Attachment's shape)."""
        return {
            "kind": kind or ("photo" if self.is_photo else "document"),
            "file_id": None,
            "name": self.name,
            "mime_type": self.mime_type,
            "size": self.size,
            "stored_id": self.id,
        }


class FileRefused(ValueError):
    """A file we do not keep, with the sentence the sender is told."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def describe(
    content: bytes,
    *,
    name: str | None,
    declared: str | None,
    limit: int,
    file_id: str | None = None,
    owner: str | None = None,
    ticket_id: int | None = None,
) -> StoredFile:
    """The stored file for `content`, or FileRefused: too large, or not a kind we accept."""
    if len(content) > limit:
        raise FileRefused(too_large_text(limit), too_large=True)
    mime = sniff(content[:SNIFF_BYTES])
    if mime is None or not agrees(declared, mime):
        raise FileRefused(f"That kind of file cannot be sent here: send {KINDS}.")
    return StoredFile(
        id=file_id or new_file_id(),
        name=safe_name(name, mime),
        mime_type=mime,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        owner=owner,
        ticket_id=ticket_id,
    )


def too_large_text(limit: int) -> str:
    return f"That file is too large: the limit is {human_size(limit)}."


def human_size(size: int) -> str:
    return f"{size // (1024 * 1024)} MB" if size >= 1024 * 1024 else f"{-(-size // 1024)} KB"


class FileLinks:
    """Signed, expiring links to stored files: `/files/<id>?expires=<unix>&signature=<hmac>`.

    The key is derived from the server's secret (shared by every replica), so any replica
    serves a link another made; a link names one file and cannot be widened or extended.
    """

    PATH = "/files/"

    def __init__(self, secret: str, base_url: str | None, ttl_seconds: float) -> None:
        self._key = hmac.new(secret.encode(), b"careline stored-file links", "sha256").digest()
        self.base_url = (base_url or "").rstrip("/")
        self.ttl_seconds = ttl_seconds

    def signature(self, file_id: str, expires: int) -> str:
        message = f"{file_id}.{expires}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()

    def path(self, file_id: str, *, ttl: float | None = None, now: float | None = None) -> str:
        expires = int((now if now is not None else time.time()) + (ttl or self.ttl_seconds))
        signature = self.signature(file_id, expires)
        return f"{self.PATH}{quote(file_id)}?expires={expires}&signature={signature}"

    def url(self, file_id: str, *, ttl: float | None = None) -> str | None:
        """The absolute link, or None when the server does not know its public address."""
        if not self.base_url:
            return None
        return self.base_url + self.path(file_id, ttl=ttl)

    def valid(self, file_id: str, expires: str, signature: str, now: float | None = None) -> bool:
        if not expires.isdigit() or int(expires) < (now if now is not None else time.time()):
            return False
        return hmac.compare_digest(self.signature(file_id, int(expires)), signature)
