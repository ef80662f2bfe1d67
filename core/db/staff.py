"""The console's people: staff accounts, invitations, sessions, saved replies and who is
looking at which ticket (tables in core/db/tables.py, rules in admin_api/console/)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.model import utcnow

_a = t.staff_accounts.c
_i = t.staff_invitations.c
_s = t.staff_sessions.c
_c = t.canned_responses.c
_p = t.ticket_presence.c


@dataclass(frozen=True, slots=True)
class StaffAccount:
    id: int
    email: str
    name: str
    role: str
    agent_id: int | None
    active: bool
    password_hash: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Invitation:
    id: int
    email: str | None
    name: str
    role: str
    agent_id: int | None
    nonce: str
    created_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its account."""

    session_id: int
    csrf: str
    last_seen_at: datetime
    account: StaffAccount


@dataclass(frozen=True, slots=True)
class Canned:
    id: int
    title: str
    body: str
    updated_by: str
    updated_at: datetime


_ACCOUNT = (_a.id, _a.email, _a.name, _a.role, _a.agent_id, _a.active, _a.password_hash,
            _a.created_at)  # fmt: skip


# --- accounts --------------------------------------------------------------------------


async def account_by_email(session: AsyncSession, email: str) -> StaffAccount | None:
    row = (await session.execute(select(*_ACCOUNT).where(_a.email == email.lower()))).first()
    return StaffAccount(*row) if row else None


async def account_by_id(session: AsyncSession, staff_id: int) -> StaffAccount | None:
    row = (await session.execute(select(*_ACCOUNT).where(_a.id == staff_id))).first()
    return StaffAccount(*row) if row else None


async def accounts(session: AsyncSession) -> list[StaffAccount]:
    rows = await session.execute(select(*_ACCOUNT).order_by(_a.name, _a.id))
    return [StaffAccount(*r) for r in rows]


async def has_admin(session: AsyncSession) -> bool:
    stmt = select(_a.id).where(_a.role == "admin", _a.active.is_(True)).limit(1)
    return (await session.execute(stmt)).first() is not None


async def set_password(session: AsyncSession, staff_id: int, password_hash: str) -> None:
    await session.execute(
        update(t.staff_accounts)
        .where(_a.id == staff_id)
        .values(password_hash=password_hash, password_set_at=utcnow())
    )


# --- invitations -----------------------------------------------------------------------


async def invite(
    session: AsyncSession,
    *,
    email: str | None,
    name: str,
    role: str,
    agent_id: int | None,
    nonce: str,
    created_by: str,
    ttl: timedelta,
) -> int:
    now = utcnow()
    invitation_id = await session.scalar(
        insert(t.staff_invitations)
        .values(
            email=email.lower() if email else None,
            name=name[:200],
            role=role,
            agent_id=agent_id,
            nonce=nonce,
            created_by=created_by[:100],
            created_at=now,
            expires_at=now + ttl,
        )
        .returning(_i.id)
    )
    assert invitation_id is not None
    return int(invitation_id)


_INVITATION = (_i.id, _i.email, _i.name, _i.role, _i.agent_id, _i.nonce, _i.created_by,
               _i.created_at, _i.expires_at, _i.used_at)  # fmt: skip


async def invitation(session: AsyncSession, invitation_id: int) -> Invitation | None:
    row = (await session.execute(select(*_INVITATION).where(_i.id == invitation_id))).first()
    return Invitation(**row._mapping) if row else None


async def open_invitations(session: AsyncSession) -> list[Invitation]:
    now = utcnow()
    rows = await session.execute(
        select(*_INVITATION)
        .where(_i.used_at.is_(None), _i.expires_at > now)
        .order_by(_i.created_at.desc())
    )
    return [Invitation(**r._mapping) for r in rows]


async def first_admin_invitation(session: AsyncSession) -> Invitation | None:
    """The open invitation of the first admin (no email yet), if any."""
    now = utcnow()
    row = (
        await session.execute(
            select(*_INVITATION)
            .where(_i.role == "admin", _i.email.is_(None), _i.used_at.is_(None),
                   _i.expires_at > now)
            .order_by(_i.id.desc())
            .limit(1)
        )
    ).first()  # fmt: skip
    return Invitation(**row._mapping) if row else None


async def lock_first_admin(session: AsyncSession) -> None:
    """Serialise replicas creating the first admin's invitation (PostgreSQL; SQLite has one
    writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('careline_staff'))"))


async def accept(
    session: AsyncSession, found: Invitation, *, email: str, name: str, password_hash: str
) -> int | None:
    """Use the invitation once: the new account's id, or None when it was used meanwhile.
    The invitation is marked used by the same conditional UPDATE that wins the race."""
    now = utcnow()
    used = await session.execute(
        update(t.staff_invitations)
        .where(_i.id == found.id, _i.used_at.is_(None), _i.expires_at > now)
        .values(used_at=now)
    )
    if not getattr(used, "rowcount", 0):
        return None
    staff_id = await session.scalar(
        insert(t.staff_accounts)
        .values(
            email=email.lower(),
            name=name[:200],
            role=found.role,
            agent_id=found.agent_id,
            password_hash=password_hash,
            active=True,
            created_at=now,
            password_set_at=now,
        )
        .returning(_a.id)
    )
    assert staff_id is not None
    if found.agent_id is not None:  # the agent goes by the name they gave
        await session.execute(
            update(t.agents).where(t.agents.c.id == found.agent_id).values(name=name[:200])
        )
    return int(staff_id)


# --- sessions --------------------------------------------------------------------------


async def open_session(
    session: AsyncSession, staff_id: int, token_hash: str, csrf: str, ttl: timedelta
) -> int:
    now = utcnow()
    session_id = await session.scalar(
        insert(t.staff_sessions)
        .values(
            token_hash=token_hash,
            staff_id=staff_id,
            csrf=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ttl,
        )
        .returning(_s.id)
    )
    assert session_id is not None
    return int(session_id)


async def signed_in(session: AsyncSession, token_hash: str, idle: timedelta) -> SignedIn | None:
    """The live session of this token: not revoked, not expired, used within `idle`, its
    account active (and its agent, for an agent: deactivating an agent signs them out)."""
    now = utcnow()
    row = (
        await session.execute(
            select(_s.id, _s.csrf, _s.last_seen_at, *_ACCOUNT)
            .join(t.staff_accounts, _a.id == _s.staff_id)
            .outerjoin(t.agents, t.agents.c.id == _a.agent_id)
            .where(
                _s.token_hash == token_hash,
                _s.revoked_at.is_(None),
                _s.expires_at > now,
                _s.last_seen_at > now - idle,
                _a.active.is_(True),
                or_(_a.agent_id.is_(None), t.agents.c.active.is_(True)),
            )
        )
    ).first()
    if row is None:
        return None
    return SignedIn(row[0], row[1], row[2], StaffAccount(*row[3:]))


async def touch(session: AsyncSession, session_id: int) -> None:
    await session.execute(
        update(t.staff_sessions).where(_s.id == session_id).values(last_seen_at=utcnow())
    )


async def end_session(session: AsyncSession, session_id: int) -> None:
    await session.execute(
        update(t.staff_sessions)
        .where(_s.id == session_id, _s.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def end_sessions(session: AsyncSession, staff_id: int) -> int:
    """Sign out everywhere: every live session of this account."""
    ended = await session.execute(
        update(t.staff_sessions)
        .where(_s.staff_id == staff_id, _s.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return int(getattr(ended, "rowcount", 0) or 0)


# --- saved replies ---------------------------------------------------------------------


async def canned(session: AsyncSession) -> list[Canned]:
    rows = await session.execute(
        select(_c.id, _c.title, _c.body, _c.updated_by, _c.updated_at).order_by(_c.title)
    )
    return [Canned(*r) for r in rows]


async def save_canned(
    session: AsyncSession, *, title: str, body: str, by: str, canned_id: int | None = None
) -> int:
    values: dict[str, Any] = {"title": title, "body": body, "updated_by": by[:100],
                              "updated_at": utcnow()}  # fmt: skip
    if canned_id is None:
        new_id = await session.scalar(insert(t.canned_responses).values(**values).returning(_c.id))
        assert new_id is not None
        return int(new_id)
    await session.execute(update(t.canned_responses).where(_c.id == canned_id).values(**values))
    return canned_id


async def delete_canned(session: AsyncSession, canned_id: int) -> None:
    await session.execute(delete(t.canned_responses).where(_c.id == canned_id))


# --- who is on a ticket ----------------------------------------------------------------


async def seen(session: AsyncSession, ticket_id: int, staff_id: int, *, replying: bool) -> None:
    """This person has the ticket open (and is writing a reply, or not), now."""
    postgres = session.get_bind().dialect.name == "postgresql"
    insert_ = postgresql.insert if postgres else sqlite.insert
    values = {"ticket_id": ticket_id, "staff_id": staff_id, "replying": replying,
              "seen_at": utcnow()}  # fmt: skip
    stmt = insert_(t.ticket_presence).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_p.ticket_id, _p.staff_id],
        set_={"replying": stmt.excluded.replying, "seen_at": stmt.excluded.seen_at},
    )
    await session.execute(stmt)


async def others_on(
    session: AsyncSession, ticket_id: int, staff_id: int, within: timedelta
) -> list[tuple[str, bool]]:
    """Who else had this ticket open within `within`: (name, writing a reply)."""
    rows = await session.execute(
        select(_a.name, _p.replying)
        .join(t.staff_accounts, _a.id == _p.staff_id)
        .where(
            and_(_p.ticket_id == ticket_id, _p.staff_id != staff_id),
            _p.seen_at > utcnow() - within,
        )
        .order_by(_a.name)
    )
    return [(str(name), bool(replying)) for name, replying in rows]
