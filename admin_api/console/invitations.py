"""Invitation links: the first admin's, made at the first start, and each invitee's, mailed
by the relay (bots/notices/staff.py)."""

from __future__ import annotations

from datetime import timedelta

from admin_api.console.security import InvitationLinks, new_nonce
from core.db import staff
from core.db.database import Database

CONSOLE_PATH = "/console"
FIRST_ADMIN_DAYS = 7


def invitation_url(base_url: str, links: InvitationLinks, found: staff.Invitation) -> str:
    return f"{base_url.rstrip('/')}{CONSOLE_PATH}/invitations/{links.token(found.id, found.nonce)}"


async def first_admin_link(db: Database, secret: str, base_url: str) -> str | None:
    """While nobody can sign in as an admin: the link that makes the first admin (an open
    one, or a new one). None once an admin exists. Replicas starting together make one."""
    async with db.sessions() as session:
        await staff.lock_first_admin(session)
        if await staff.has_admin(session):
            return None
        found = await staff.first_admin_invitation(session)
        if found is None:
            invitation_id = await staff.invite(
                session, email=None, name="", role="admin", agent_id=None, nonce=new_nonce(),
                created_by="first start", ttl=timedelta(days=FIRST_ADMIN_DAYS),
            )  # fmt: skip
            await session.commit()
            found = await staff.invitation(session, invitation_id)
            assert found is not None
        return invitation_url(base_url, InvitationLinks(secret), found)
