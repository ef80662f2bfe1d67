"""Mail to staff about the console: the invitation with its link (the console is English)."""

from __future__ import annotations

import html
from collections.abc import Callable

from admin_api.console.invitations import invitation_url
from admin_api.console.security import InvitationLinks
from bots.channels import RetryLater
from bots.email import Email, EmailSender
from bots.relay import Delivery, Handlers, Skip
from core import events as ev
from core.db import staff
from core.db.database import Database
from core.model import utcnow


class StaffNotices:
    def __init__(
        self, db: Database, email: EmailSender, secret: Callable[[], str | None], base_url: str
    ) -> None:
        self.db = db
        self.email = email
        self.secret = secret
        self.base_url = base_url

    def register(self, handlers: Handlers) -> None:
        handlers.add(ev.StaffInvited, "staff_invitation_email", self.invitation)

    async def invitation(self, delivery: Delivery) -> str | None:
        event = delivery.event
        assert isinstance(event, ev.StaffInvited)
        async with self.db.sessions() as session:
            found = await staff.invitation(session, event.invitation_id)
        if found is None or found.email is None:
            raise Skip("the invitation is gone, or has no address")
        if found.used_at is not None or found.expires_at <= utcnow():
            raise Skip("the invitation was used or has expired")
        secret = self.secret()
        if secret is None:
            raise RetryLater("the server's secret is not loaded yet", seconds=5)
        link = invitation_url(self.base_url, InvitationLinks(secret), found)
        role = "an admin" if found.role == "admin" else "an agent"
        until = found.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        greeting = f"Hello {found.name}," if found.name else "Hello,"
        lines = [
            greeting,
            "",
            f"You are invited to work in the Careline console as {role}.",
            f"Open this link to choose your password (it works once, until {until}):",
            "",
            link,
            "",
            "If you did not expect this, you can ignore this email.",
        ]
        page = "".join(
            f"<p>{html.escape(line)}</p>" if line != link else
            f'<p><a href="{html.escape(link)}">Choose your password</a></p>'
            for line in lines if line
        )  # fmt: skip
        return await self.email.send(
            Email(
                to=found.email,
                subject="Your invitation to the Careline console",
                text="\n".join(lines),
                html=f"<!doctype html><html><body>{page}</body></html>",
                category="staff_invitation",
                key=delivery.key,
            )
        )
