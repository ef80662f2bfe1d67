"""The file store in the database: the bytes in `stored_files`, one row per file.

The embedded default and PostgreSQL alike, so every replica reads what another stored and a
backup holds the files with the tickets that name them. Writes run in their own short
transaction, before the message that names the file is recorded: a file whose message never
lands is an orphan the erasure of its owner still finds (by `owner`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

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


class SqlFileStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, file: StoredFile, content: bytes) -> StoredFile:
        existing = await self.info(file.id)
        if existing is not None:
            return existing
        row = {
            "id": file.id,
            "name": file.name,
            "mime_type": file.mime_type,
            "size": file.size,
            "sha256": file.sha256,
            "owner": file.owner,
            "ticket_id": file.ticket_id,
            "content": content,
            "created_at": utcnow(),
        }
        try:
            async with self.db.engine.begin() as conn:
                await conn.execute(t.stored_files.insert().values(row))
        except IntegrityError:  # another replica stored the same platform file first
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
        return StoredFile(*row[:-1]), bytes(row[-1])
