"""The numbered choices last texted to each phone number (see `tables.sms_menus`)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from core.db import tables as t
from core.db.database import Database
from core.model import utcnow

_m = t.sms_menus.c


class SmsMenus:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert = postgresql.insert if db.is_postgres else sqlite.insert

    async def remember(self, chat_id: str, choices: Sequence[tuple[str, str]]) -> None:
        """The text just sent to `chat_id` offered these choices (none: forget the last)."""
        async with self.db.engine.begin() as conn:
            if not choices:
                await conn.execute(delete(t.sms_menus).where(_m.chat_id == chat_id))
                return
            values = {
                "chat_id": chat_id,
                "choices": [list(pair) for pair in choices],
                "sent_at": utcnow(),
            }
            stmt = self._insert(t.sms_menus).values(**values)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[_m.chat_id],
                    set_={"choices": stmt.excluded.choices, "sent_at": stmt.excluded.sent_at},
                )
            )

    async def last(self, chat_id: str) -> list[tuple[str, str]]:
        async with self.db.engine.connect() as conn:
            raw = (
                await conn.execute(select(_m.choices).where(_m.chat_id == chat_id))
            ).scalar_one_or_none()
        return [(str(label), str(value)) for label, value in raw or ()]
