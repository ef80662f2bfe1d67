"""Erasure's SQL: the copies of a customer's data that no domain object holds.

The service (core.services.erase_customer) blanks the customer, their identities, tickets and
messages through the domain objects; this deletes or blanks the rest in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    cast,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.ports import PersonalTraces

# Rows still being worked keep their payload: a pending delivery needs it to run, an answered
# one to send its stored replies. Finished rows keep theirs only for a human to read.
FINISHED = ("done", "parked")


class SqlErasure:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def erase_copies(self, traces: PersonalTraces) -> dict[str, int]:
        emails = {e.lower() for e in (*traces.emails, *await self._code_emails(traces))}
        return {
            "transcript_lines": await self._delete_transcript(traces.visitor_ids),
            "email_codes": await self._delete_codes(traces.customer_id),
            "knowledge_gaps": await self._delete_gaps(traces.customer_id),
            "suppressions": await self._delete_suppressions(emails),
            "conversations": await self._reset_conversations(traces.identity_ids),
            "rate_limits": await self._delete_counters(traces.visitor_ids),
            "inbox_payloads": await self._blank_inbox(_variants([*traces.needles, *emails])),
            "outbox_errors": await self._blank_outbox(traces),
            "files": await self._delete_files(traces),
            "send_slots": await self._delete_slots(traces.chat_ids),
            "sms_menus": await self._delete_menus(traces.chat_ids),
        }

    async def _code_emails(self, traces: PersonalTraces) -> list[str]:
        v = t.email_verifications.c
        rows = await self.session.execute(
            select(v.email).where(v.customer_id == traces.customer_id)
        )
        return [str(email) for email in rows.scalars()]

    async def _delete_transcript(self, visitor_ids: Iterable[str]) -> int:
        w = t.webchat_messages.c
        stmt = delete(t.webchat_messages).where(w.visitor_id.in_(list(visitor_ids)))
        return _count(await self.session.execute(stmt))

    async def _delete_codes(self, customer_id: int) -> int:
        v = t.email_verifications.c
        stmt = delete(t.email_verifications).where(v.customer_id == customer_id)
        return _count(await self.session.execute(stmt))

    async def _delete_gaps(self, customer_id: int) -> int:
        """The questions the bot could not answer are the customer's own words."""
        g = t.knowledge_gaps.c
        stmt = delete(t.knowledge_gaps).where(g.customer_id == customer_id)
        return _count(await self.session.execute(stmt))

    async def _delete_slots(self, chat_ids: Iterable[str]) -> int:
        """A chat's send-pacing row is keyed `<bot>:<chat id>` (core.db.pacing)."""
        p = t.send_pacing.c
        theirs = [p.key.endswith(f":{chat}", autoescape=True) for chat in chat_ids if chat]
        if not theirs:
            return 0
        return _count(await self.session.execute(delete(t.send_pacing).where(or_(*theirs))))

    async def _delete_menus(self, chat_ids: Iterable[str]) -> int:
        """The choices last texted to their number (core.db.sms)."""
        numbers = [chat for chat in chat_ids if chat]
        stmt = delete(t.sms_menus).where(t.sms_menus.c.chat_id.in_(numbers))
        return _count(await self.session.execute(stmt)) if numbers else 0

    async def stored_files(self, traces: PersonalTraces) -> list[str]:
        rows = await self.session.execute(select(t.stored_files.c.id).where(_theirs(traces)))
        return [str(file_id) for file_id in rows.scalars()]

    async def _delete_files(self, traces: PersonalTraces) -> int:
        """Their uploads, the files of their tickets (agents' too) and any their messages
        name (bytes kept in object storage go after commit, see core.db.s3)."""
        stmt = delete(t.stored_files).where(_theirs(traces))
        return _count(await self.session.execute(stmt))

    async def _delete_suppressions(self, emails: set[str]) -> int:
        s = t.email_suppressions.c
        stmt = delete(t.email_suppressions).where(func.lower(s.email).in_(sorted(emails)))
        return _count(await self.session.execute(stmt))

    async def _delete_counters(self, visitor_ids: Iterable[str]) -> int:
        """The web chat counts hits per visitor id (core/db/ratelimit.py)."""
        r = t.rate_limits.c
        stmt = delete(t.rate_limits).where(r.key.in_(list(visitor_ids)))
        return _count(await self.session.execute(stmt))

    async def _reset_conversations(self, identity_ids: Iterable[int]) -> int:
        # The version is left alone: the turn that asked for erasure saves its own (idle) state
        # under the version it read, in this same transaction.
        c = t.conversations.c
        stmt = (
            update(t.conversations)
            .where(c.identity_id.in_(list(identity_ids)))
            .values(state="idle", slots={}, history=[])
        )
        return _count(await self.session.execute(stmt))

    async def _blank_inbox(self, needles: list[str]) -> int:
        i = t.inbox.c
        stmt = (
            update(t.inbox)
            .where(i.status.in_(FINISHED), _mentions(cast(i.payload, Text), i.error, needles))
            .values(payload=None, error=None)
        )
        return _count(await self.session.execute(stmt))

    async def _blank_outbox(self, traces: PersonalTraces) -> int:
        """Events carry ids only, but a failed delivery's error or a chat's provider id (which
        may embed the chat) can name the customer. Slack's ids stay: the desk's erasure
        handler finds the thread copies by them."""
        o, d = t.outbox.c, t.outbox_deliveries.c
        theirs = select(o.id).where(
            or_(
                o.payload["customer_id"].as_integer() == traces.customer_id,
                o.payload["ticket_id"].as_integer().in_(list(traces.ticket_ids)),
            )
        )
        events = update(t.outbox).where(o.id.in_(theirs), o.last_error.is_not(None))
        blanked = _count(await self.session.execute(events.values(last_error=None)))
        blanked += await self._drop_reasons(theirs)
        errors = update(t.outbox_deliveries).where(d.event_id.in_(theirs))
        await self.session.execute(errors.values(last_error=None))
        ids = errors.where(~d.handler.startswith("slack."), d.provider_id.is_not(None))
        await self.session.execute(ids.values(provider_id=None))
        return blanked

    async def _drop_reasons(self, theirs: Select[Any]) -> int:
        """A status change's reason is typed by staff and may name the customer; the event
        means the same without it."""
        o = t.outbox.c
        rows = (await self.session.execute(select(o.id, o.payload).where(o.id.in_(theirs)))).all()
        dropped = 0
        for event_id, payload in rows:
            if isinstance(payload, dict) and payload.get("reason"):
                stmt = update(t.outbox).where(o.id == event_id)
                await self.session.execute(stmt.values(payload={**payload, "reason": ""}))
                dropped += 1
        return dropped


def _theirs(traces: PersonalTraces) -> ColumnElement[bool]:
    f = t.stored_files.c
    return or_(
        f.owner.in_(list(traces.file_owners)),
        f.ticket_id.in_(list(traces.ticket_ids)),
        f.id.in_(list(traces.file_ids)),
    )


def _mentions(
    payload: ColumnElement[Any], error: ColumnElement[Any], needles: list[str]
) -> ColumnElement[bool]:
    if not needles:
        return false()
    return or_(
        *(payload.contains(n, autoescape=True) for n in needles),
        *(error.contains(n, autoescape=True) for n in needles),
    )


def _variants(needles: Iterable[str]) -> list[str]:
    """Each needle as written and as JSON writes it inside a string (SQLite's text is ASCII
    with \\u escapes; PostgreSQL's jsonb text keeps the characters)."""
    found: set[str] = set()
    for needle in needles:
        if needle:
            found |= {
                needle,
                json.dumps(needle)[1:-1],
                json.dumps(needle, ensure_ascii=False)[1:-1],
            }
    return sorted(found)


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
