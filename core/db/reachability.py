"""Whether Careline can write to a customer in a chat: one statement for every channel.

A platform that refuses us (Telegram's 403 for a bot the user blocked) marks the identity
unreachable, and notices go by email instead; the user unblocking the bot marks it reachable
again. Written in its own short transaction, outside any unit of work
(core.ports.Reachability).
"""

from __future__ import annotations

from sqlalchemy import update

from core.db import tables as t
from core.db.database import Database
from core.model import Channel

_ci = t.channel_identities.c


class SqlReachability:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def stop_texts(self, phone: str, texts: bool = False) -> int:
        """Texts to this verified phone number off (STOP, or Twilio refuses it) or on again
        (START); how many customers changed."""
        c = t.customers.c
        async with self.db.engine.begin() as conn:
            changed = await conn.execute(
                update(t.customers)
                .where(c.phone == phone, c.phone_verified.is_(True))
                .values(texts=texts)
            )
        return int(changed.rowcount or 0)

    async def mark(
        self,
        channel: Channel,
        reachable: bool,
        *,
        identity_id: int | None = None,
        chat_id: str | None = None,
        external_id: str | None = None,
    ) -> int:
        """Mark the identity found by exactly one of its id, chat or platform user id; how
        many rows changed."""
        keys = [
            (_ci.id, identity_id),
            (_ci.chat_id, chat_id),
            (_ci.external_id, external_id),
        ]
        given = [(column, value) for column, value in keys if value is not None]
        if len(given) != 1:
            raise ValueError(
                "name the identity by exactly one of identity_id, chat_id, external_id"
            )
        column, value = given[0]
        async with self.db.engine.begin() as conn:
            changed = await conn.execute(
                update(t.channel_identities)
                .where(_ci.channel == channel, column == value)
                .values(reachable=reachable)
            )
        return int(changed.rowcount or 0)
