"""Who may call: the caller of a request, the roles, and the shape of an API key.

A key is `clk_` + 43 url-safe characters (256 random bits), so a plain SHA-256 is as good
as a slow password hash here and lets the lookup be one indexed equality on the hash: the
database never compares the secret itself, and timing reveals nothing about it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from core.errors import Conflict, Forbidden, InvalidInput
from core.model import Ticket

KEY_PREFIX = "clk_"
SHOWN_PREFIX_CHARS = 12  # "clk_" + 8 characters: enough to tell keys apart in a listing
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write `last_used_at` at most this often

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an API key or a person signed in to the console, their name and role,
    and the agent an agent speaks for."""

    name: str
    role: Role
    agent_id: int | None = None
    key_id: int | None = None  # an API key's caller
    staff_id: int | None = None  # a console user

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> str:
        """How the timeline names this caller."""
        if self.role == "agent":
            return f"agent:{self.agent_id}"
        return f"admin:{self.name}"[:64]


# --- the rules: one set for the admin API and the console ---------------------------------


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise Forbidden("this needs an admin")


def require_agent(caller: Caller) -> int:
    """The caller's agent id; only agents (not admins) act as an agent."""
    if caller.role != "agent" or caller.agent_id is None:
        raise Forbidden("this needs an agent")
    return caller.agent_id


def check_may_work(caller: Caller, ticket: Ticket, *, claimable: bool) -> None:
    """Agents work their own tickets; `claimable` also lets them act on unassigned ones."""
    if caller.is_admin or ticket.assignee_id == caller.agent_id:
        return
    if claimable and ticket.assignee_id is None:
        return
    raise Forbidden("this ticket is assigned to another agent")


def check_claim(caller: Caller, ticket: Ticket) -> int:
    """An agent takes an unassigned ticket (or keeps their own): their agent id."""
    agent_id = require_agent(caller)
    if ticket.assignee_id not in (None, agent_id):
        raise Conflict(f"{ticket.reference} is assigned to another agent")
    return agent_id


class AgentRequired(InvalidInput):
    code = "agent_id_required"


def replying_agent(caller: Caller, ticket: Ticket, asked: int | None) -> int:
    """Who answers the customer: an agent as themselves (their own or an unassigned
    ticket), an admin as the agent they name."""
    if caller.is_admin:
        if asked is None:
            raise AgentRequired("an admin must say which agent answers (agent_id)")
        return asked
    agent_id = require_agent(caller)
    if asked not in (None, agent_id):
        raise Forbidden("an agent answers as themselves")
    check_may_work(caller, ticket, claimable=True)
    return agent_id


@dataclass(frozen=True, slots=True)
class NewKey:
    id: int
    key: str  # the secret: shown once, never stored
    prefix: str
    name: str
    role: Role
    agent_id: int | None
    created_at: datetime


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
