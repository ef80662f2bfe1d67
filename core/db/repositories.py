"""SQLAlchemy implementations of the repository protocols in core.ports."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import tables as t
from core.db.statements import Statements, one
from core.lifecycle import ACTIVE_STATUSES, Status
from core.model import (
    Agent,
    Channel,
    ChannelIdentity,
    Conversation,
    Customer,
    Message,
    Ticket,
    TicketActivity,
)
from core.ports import EmailVerification, TicketRecord, TurnRecord

_ACTIVE = [s.value for s in ACTIVE_STATUSES]

if TYPE_CHECKING:
    from core.db.database import Database


class SqlCustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def add(self, customer: Customer) -> Customer:
        self.session.add(customer)
        await self.session.flush()
        return customer

    async def identity(self, channel: Channel, external_id: str) -> ChannelIdentity | None:
        stmt = select(ChannelIdentity).where(
            t.channel_identities.c.channel == channel,
            t.channel_identities.c.external_id == external_id,
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def identity_by_id(self, identity_id: int) -> ChannelIdentity | None:
        return await self.session.get(ChannelIdentity, identity_id)

    async def add_identity(self, identity: ChannelIdentity) -> ChannelIdentity:
        self.session.add(identity)
        await self.session.flush()
        if identity.customer_id is not None:
            customer = await self.session.get(Customer, identity.customer_id)
            if customer is not None and identity not in customer.identities:
                customer.identities.append(identity)
        return identity


class SqlAgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, agent_id: int) -> Agent | None:
        return await self.session.get(Agent, agent_id)

    async def add(self, agent: Agent) -> Agent:
        self.session.add(agent)
        await self.session.flush()
        return agent

    async def list(self, *, active_only: bool = False) -> Sequence[Agent]:
        stmt = select(Agent).order_by(t.agents.c.id)
        if active_only:
            stmt = stmt.where(t.agents.c.active.is_(True))
        return (await self.session.scalars(stmt)).all()

    async def by_slack_user(self, slack_user_id: str) -> Agent | None:
        stmt = select(Agent).where(t.agents.c.slack_user_id == slack_user_id)
        return (await self.session.scalars(stmt)).one_or_none()

    async def by_email(self, email: str) -> Agent | None:
        stmt = select(Agent).where(func.lower(t.agents.c.email) == email.strip().lower())
        return (await self.session.scalars(stmt)).one_or_none()

    async def open_loads(self) -> dict[int, int]:
        stmt = (
            select(t.tickets.c.assignee_id, func.count())
            .where(t.tickets.c.assignee_id.is_not(None), t.tickets.c.status.in_(_ACTIVE))
            .group_by(t.tickets.c.assignee_id)
        )
        return {int(agent_id): int(n) for agent_id, n in (await self.session.execute(stmt)).all()}


class SqlTicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, ticket_id: int) -> Ticket | None:
        return await self.session.get(Ticket, ticket_id)

    async def add(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    async def add_message(self, message: Message) -> Message:
        self.session.add(message)
        await self.session.flush()
        return message

    async def add_activity(self, activity: TicketActivity) -> TicketActivity:
        self.session.add(activity)
        return activity

    async def message(self, message_id: int) -> Message | None:
        return await self.session.get(Message, message_id)

    async def message_by_external_id(self, channel: Channel, external_id: str) -> Message | None:
        stmt = select(Message).where(
            t.messages.c.channel == channel, t.messages.c.external_id == external_id
        )
        return (await self.session.scalars(stmt)).one_or_none()

    async def timeline(self, ticket_id: int) -> Sequence[Message | TicketActivity]:
        await self.session.flush()
        msgs = (
            await self.session.scalars(
                select(Message).where(t.messages.c.ticket_id == ticket_id).order_by(t.messages.c.id)
            )
        ).all()
        acts = (
            await self.session.scalars(
                select(TicketActivity)
                .where(t.ticket_activities.c.ticket_id == ticket_id)
                .order_by(t.ticket_activities.c.id)
            )
        ).all()
        entries: list[Message | TicketActivity] = [*msgs, *acts]
        entries.sort(key=lambda e: (e.created_at, isinstance(e, TicketActivity), e.id or 0))
        return entries

    async def for_customer(
        self, customer_id: int, *, active_only: bool = False
    ) -> Sequence[Ticket]:
        stmt = (
            select(Ticket)
            .where(t.tickets.c.customer_id == customer_id)
            .order_by(t.tickets.c.id.desc())
        )
        if active_only:
            stmt = stmt.where(t.tickets.c.status.in_(_ACTIVE))
        return (await self.session.scalars(stmt)).all()

    async def held_by(self, agent_id: int) -> Sequence[Ticket]:
        stmt = (
            select(Ticket)
            .where(t.tickets.c.assignee_id == agent_id, t.tickets.c.status.in_(_ACTIVE))
            .order_by(t.tickets.c.id)
        )
        return (await self.session.scalars(stmt)).all()

    async def unassigned(self, limit: int) -> Sequence[Ticket]:
        stmt = (
            select(Ticket)
            .where(t.tickets.c.assignee_id.is_(None), t.tickets.c.status.in_(_ACTIVE))
            .order_by(t.tickets.c.created_at, t.tickets.c.id)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def resolved_before(self, moment: datetime, limit: int) -> Sequence[Ticket]:
        stmt = (
            select(Ticket)
            .where(t.tickets.c.status == Status.RESOLVED, t.tickets.c.resolved_at <= moment)
            .order_by(t.tickets.c.resolved_at)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def sla_breaches(self, now: datetime, limit: int) -> Sequence[Ticket]:
        c = t.tickets.c
        stmt = (
            select(Ticket)
            .where(
                c.status.in_(_ACTIVE),
                ((c.first_response_at.is_(None)) & (c.first_response_due <= now))
                | (c.resolution_due <= now),
            )
            .order_by(c.id)
            .limit(limit)
        )
        return (await self.session.scalars(stmt)).all()

    async def unannounced_sla_breaches(self, now: datetime, limit: int) -> Sequence[Ticket]:
        c, a = t.tickets.c, t.ticket_activities.c

        def announced(kind: str) -> Any:
            return exists().where(a.ticket_id == c.id, a.kind == f"sla_breached:{kind}")

        stmt = (
            select(Ticket)
            .where(
                c.status.in_(_ACTIVE),
                (c.first_response_at.is_(None) & (c.first_response_due <= now)
                 & ~announced("first_response"))
                | ((c.resolution_due <= now) & ~announced("resolution")),
            )
            .order_by(c.id)
            .limit(limit)
        )  # fmt: skip
        return (await self.session.scalars(stmt)).all()

    async def queue_position(self, ticket: Ticket) -> int:
        c = t.tickets.c
        stmt = select(func.count()).where(
            c.assignee_id.is_(None),
            c.status.in_(_ACTIVE),
            (c.created_at < ticket.created_at)
            | ((c.created_at == ticket.created_at) & (c.id < ticket.id)),
        )
        return 1 + int((await self.session.execute(stmt)).scalar_one())


class SqlConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, identity_id: int) -> Conversation | None:
        stmt = select(Conversation).where(t.conversations.c.identity_id == identity_id)
        return (await self.session.scalars(stmt)).one_or_none()

    async def add(self, conversation: Conversation) -> Conversation:
        self.session.add(conversation)
        await self.session.flush()
        return conversation


# --- contact details (dialog engine area) ----------------------------------------------


class SqlEmailVerificationRepository:
    """Core SQL over `email_verifications`: short-lived rows, no mapped class needed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        *,
        customer_id: int,
        email: str,
        code: str,
        created_at: datetime,
        expires_at: datetime,
        kind: str = "email",
    ) -> int:
        stmt = (
            insert(t.email_verifications)
            .values(
                customer_id=customer_id,
                email=email,
                kind=kind,
                code=code,
                attempts=0,
                created_at=created_at,
                expires_at=expires_at,
            )
            .returning(t.email_verifications.c.id)
        )
        return int((await self.session.execute(stmt)).scalar_one())

    async def get(self, verification_id: int) -> EmailVerification | None:
        stmt = select(t.email_verifications).where(t.email_verifications.c.id == verification_id)
        row = (await self.session.execute(stmt)).mappings().first()
        return EmailVerification(**row) if row is not None else None

    async def latest_pending(
        self, customer_id: int, kind: str = "email"
    ) -> EmailVerification | None:
        v = t.email_verifications.c
        stmt = (
            select(t.email_verifications)
            .where(v.customer_id == customer_id, v.kind == kind, v.verified_at.is_(None))
            .order_by(v.id.desc())
            .limit(1)
        )
        row = (await self.session.execute(stmt)).mappings().first()
        return EmailVerification(**row) if row is not None else None

    async def count_since(self, customer_id: int, moment: datetime) -> int:
        v = t.email_verifications.c
        stmt = select(func.count()).where(v.customer_id == customer_id, v.created_at >= moment)
        return int((await self.session.execute(stmt)).scalar_one())

    async def record_attempt(self, verification_id: int) -> None:
        v = t.email_verifications.c
        await self.session.execute(
            update(t.email_verifications)
            .where(v.id == verification_id)
            .values(attempts=v.attempts + 1)
        )

    async def mark_verified(self, verification_id: int, moment: datetime) -> None:
        await self.session.execute(
            update(t.email_verifications)
            .where(t.email_verifications.c.id == verification_id)
            .values(verified_at=moment)
        )

    async def forget(self, customer_id: int) -> None:
        await self.session.execute(
            delete(t.email_verifications).where(t.email_verifications.c.customer_id == customer_id)
        )


async def record_delivered_id(db: Database, message_id: int, provider_id: str) -> None:
    """The platform's id of a message once it reached the customer's chat."""
    async with db.engine.begin() as conn:
        await conn.execute(
            update(t.messages)
            .where(t.messages.c.id == message_id)
            .values(delivered_id=provider_id[:128])
        )


# --- the dialog engine's per-turn reads and writes (dialog engine area) -----------------


class SqlDialogStore:
    """Core SQL for the hot path of a dialog turn: one read for who is writing and where the
    conversation stands, one for their tickets, one versioned write, on the unit of work's
    statements (straight through asyncpg on PostgreSQL: core.db.statements). ORM objects are
    loaded only when a turn changes the domain (opening a ticket, a message)."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def load(self, channel: Channel, external_id: str) -> TurnRecord | None:
        params = {"channel": channel.value, "external_id": external_id}
        row = await self.statements.first(_turn_query(), params)
        return TurnRecord(*row) if row is not None else None

    async def register(
        self,
        *,
        channel: Channel,
        external_id: str,
        chat_id: str,
        display_name: str,
        language: str,
        now: datetime,
    ) -> TurnRecord:
        """First contact: store the customer and their identity with prepared inserts (the
        ORM's objects and flushes cost several times more on the hot path), in one statement
        on PostgreSQL. The other columns take the table's defaults, a new Customer's. The
        conversation is inserted with the turn's state by `save_conversation`. A concurrent
        first message of the same identity raises IntegrityError."""
        # What a first contact writes; the other columns take their defaults, which are a
        # new Customer's and ChannelIdentity's (core.model).
        customer = {"display_name": display_name, "language": language, "created_at": now}
        identity = {
            "channel": channel,
            "external_id": external_id,
            "chat_id": chat_id,
            "display_name": display_name,
            "created_at": now,
        }
        run = self.statements
        if run.postgres:
            statement = _insert_customer_with_identity(tuple(customer), tuple(identity))
            params = {f"c_{k}": v for k, v in customer.items()}
            params.update({f"i_{k}": v for k, v in identity.items()})
            customer_id, identity_id = await one(run, statement, params)
        else:
            (customer_id,) = await one(run, _insert_customer(), customer)
            (identity_id,) = await one(
                run, _insert_identity(), {"customer_id": customer_id, **identity}
            )
        return TurnRecord(
            identity_id=identity_id,
            customer_id=customer_id,
            chat_id=chat_id,
            customer_name=display_name,
            language=language,
            language_chosen=False,
            email=None,
            email_verified=False,
            email_blocked=False,
            conversation_id=None,  # written with the turn's state (save_conversation)
            state=None,
            slots=None,
            history=None,
            version=None,
        )

    async def tickets(self, customer_id: int, limit: int) -> list[TicketRecord]:
        params = {"customer_id": customer_id, "limit": limit}
        return [TicketRecord(*row) for row in await self.statements.all(_tickets_query(), params)]

    async def move_chat(self, identity_id: int, chat_id: str) -> None:
        """The identity now writes from another chat (a new Telegram chat with the same user,
        a reopened Slack DM): answers and notices go there from now on."""
        await self.statements.run(_move_chat(), {"b_id": identity_id, "chat_id": chat_id})

    async def save_conversation(
        self,
        identity_id: int,
        conversation_id: int | None,
        version: int,
        *,
        state: str,
        slots: dict[str, Any],
        history: list[dict[str, Any]],
        now: datetime,
    ) -> bool:
        """Write the state if nobody else did since `version` was read; False if they did.
        The identity's first turn inserts its conversation: a concurrent twin raises
        IntegrityError (unique identity_id), a race the turn retries."""
        if conversation_id is None:
            values = {"state": state, "slots": slots, "history": history, "updated_at": now}
            await self.statements.run(
                _insert_conversation(), {"identity_id": identity_id, **values, "version": 1}
            )
            return True
        params = {
            "b_id": conversation_id,
            "b_version": version,
            "state": state,
            "slots": slots,
            "history": history,
            "updated_at": now,
            "version": version + 1,
        }
        return await self.statements.run(_save_conversation(), params) == 1


# Built once per process and reused: a turn then skips SQLAlchemy's statement construction.
@functools.cache
def _turn_query() -> Any:
    i, c, v = t.channel_identities.c, t.customers.c, t.conversations.c
    return (
        select(
            i.id,
            i.customer_id,
            i.chat_id,
            c.display_name,
            c.language,
            c.language_chosen,
            c.email,
            c.email_verified,
            c.email_blocked,
            v.id,
            v.state,
            v.slots,
            v.history,
            v.version,
        )
        .select_from(
            t.channel_identities.join(t.customers, c.id == i.customer_id).outerjoin(
                t.conversations, v.identity_id == i.id
            )
        )
        .where(i.channel == bindparam("channel"), i.external_id == bindparam("external_id"))
    )


@functools.cache
def _tickets_query() -> Any:
    k = t.tickets.c
    return (
        select(k.id, k.subject, k.status, k.created_at, k.resolved_at, k.assignee_id, k.csat_score)
        .where(k.customer_id == bindparam("customer_id"))
        .order_by(k.id.desc())
        .limit(bindparam("limit", literal_execute=False))
    )


@functools.cache
def _insert_customer() -> Any:
    return insert(t.customers).returning(t.customers.c.id)


@functools.cache
def _insert_identity() -> Any:
    return insert(t.channel_identities).returning(t.channel_identities.c.id)


@functools.cache
def _insert_customer_with_identity(
    customer_columns: tuple[str, ...], identity_columns: tuple[str, ...]
) -> Any:
    """PostgreSQL: a new customer and their identity in one statement (one round trip), the
    customer's insert a data-modifying CTE. Parameters: the columns' names prefixed `c_`
    (the customer's) and `i_` (the identity's)."""
    customers, identities = t.customers, t.channel_identities
    new_customer = (
        insert(customers)
        .values(
            {
                name: bindparam(f"c_{name}", type_=customers.c[name].type)
                for name in customer_columns
            }
        )
        .returning(customers.c.id)
        .cte("new_customer")
    )
    values = [bindparam(f"i_{name}", type_=identities.c[name].type) for name in identity_columns]
    return (
        insert(identities)
        .from_select(["customer_id", *identity_columns], select(new_customer.c.id, *values))
        .returning(identities.c.customer_id, identities.c.id)
    )


@functools.cache
def _move_chat() -> Any:
    i = t.channel_identities.c
    return (
        update(t.channel_identities)
        .where(i.id == bindparam("b_id"))
        .values(chat_id=bindparam("chat_id"))
    )


@functools.cache
def _insert_conversation() -> Any:
    return insert(t.conversations)


@functools.cache
def _save_conversation() -> Any:
    v = t.conversations.c
    return (
        update(t.conversations)
        .where(v.id == bindparam("b_id"), v.version == bindparam("b_version"))
        .values(
            state=bindparam("state"),
            slots=bindparam("slots"),
            history=bindparam("history"),
            updated_at=bindparam("updated_at"),
            version=bindparam("version"),
        )
    )
