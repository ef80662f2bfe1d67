"""The file store: one `stored_files` row per file, its bytes in the row (the default, on
SQLite and PostgreSQL alike, so a backup holds the files with the tickets that name them) or
in S3-compatible object storage (`blobs`, core.db.s3). Every replica reads what another
stored. Writes run in their own short transaction, before the message that names the file
is recorded: a file whose message never lands is an orphan the erasure of its owner still
finds (by `owner`).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.files import StoredFile
from core.model import utcnow

_INFO = (
    t.stored_files.c.id,
    t.stored_files.c.name,
    t.stored_files.c.mime_type,
    t.stored_files.c.size,
    t.stored_files.c.sha256,
    t.stored_files.c.owner,
    t.stored_files.c.ticket_id,
)


class Blobs(Protocol):
    async def put(self, file_id: str, content: bytes, mime_type: str, sha256: str) -> None: ...
    async def get(self, file_id: str) -> bytes | None: ...
    async def delete(self, file_ids: list[str]) -> int: ...
    async def check(self) -> None:
        """Raise at start when the store cannot be used (no bucket, no rights)."""
        ...


class SqlFileStore:
    def __init__(self, db: Database, blobs: Blobs | None = None) -> None:
        self.db = db
        self.blobs = blobs

    async def put(self, file: StoredFile, content: bytes) -> StoredFile:
        row = {
            "id": file.id,
            "name": file.name,
            "mime_type": file.mime_type,
            "size": file.size,
            "sha256": file.sha256,
            "owner": file.owner,
            "ticket_id": file.ticket_id,
            "content": None if self.blobs is not None else content,
            "created_at": utcnow(),
        }
        if self.blobs is not None:  # first the object, so no row names a missing one
            await self.blobs.put(file.id, content, file.mime_type, file.sha256)
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(t.stored_files.insert().values(row))
        except IntegrityError:  # the same platform file, stored before (a redelivery, a replica)
            found = await self.info(file.id)
            if found is None:
                raise
            return found
        return file

    async def info(self, file_id: str) -> StoredFile | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(*_INFO).where(t.stored_files.c.id == file_id))).first()
        return None if row is None else StoredFile(*row)

    async def read(self, file_id: str) -> tuple[StoredFile, bytes] | None:
        f = t.stored_files.c
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(*_INFO, f.content).where(f.id == file_id))).first()
        if row is None:
            return None
        content = row[-1]
        if content is None:
            if self.blobs is None:
                raise RuntimeError("this file is in object storage: set CARELINE_FILE_STORE=s3")
            content = await self.blobs.get(file_id)
            if content is None:
                return None
        return StoredFile(*row[:-1]), bytes(content)


def file_store_for(settings: Settings, db: Database) -> SqlFileStore:
    """The store the settings ask for (boto3 is imported only for S3)."""
    if settings.file_store == "database":
        return SqlFileStore(db)
    if not settings.s3_bucket:
        raise ValueError("CARELINE_FILE_STORE=s3 needs CARELINE_S3_BUCKET")
    from core.db.s3 import S3Blobs

    key, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    blobs = S3Blobs(
        settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=key.get_secret_value() if key else None,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
    return SqlFileStore(db, blobs)
