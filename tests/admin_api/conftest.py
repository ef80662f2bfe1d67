"""The admin API on the `db` fixture (SQLite and PostgreSQL), driven with httpx in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_api.app import create_admin_app
from core import services
from core.config import Settings
from core.db.database import Database
from core.db.keys import create_key
from core.model import Channel, Priority
from tests.support.customers import register_customer

Headers = dict[str, str]


@dataclass
class Api:
    db: Database
    app: FastAPI
    client: httpx.AsyncClient
    admin: Headers = field(default_factory=dict)
    _customers: int = 0

    async def key(self, role: str = "admin", agent_id: int | None = None) -> Headers:
        async with self.db.uow() as uow:
            new = await create_key(uow.session, name=f"{role} key", role=role, agent_id=agent_id)
            await uow.commit()
        return {"Authorization": f"Bearer {new.key}"}

    async def agent(self, name: str = "Grace", **kw: Any) -> int:
        async with self.db.uow() as uow:
            agent = await services.create_agent(
                uow, name=name, email=f"{name.lower()}@example.com", **kw
            )
            await uow.commit()
        assert agent.id is not None
        return agent.id

    async def agent_key(self, name: str = "Grace", **kw: Any) -> tuple[int, Headers]:
        agent_id = await self.agent(name, **kw)
        return agent_id, await self.key("agent", agent_id)

    async def customer(self, name: str = "Ada Lovelace") -> int:
        self._customers += 1
        async with self.db.uow() as uow:
            customer, _ = await register_customer(
                uow,
                channel=Channel.TELEGRAM,
                external_id=f"tg-{self._customers}",
                chat_id=f"chat-{self._customers}",
                display_name=name,
            )
            await uow.commit()
        assert customer.id is not None
        return customer.id

    async def ticket(
        self,
        customer_id: int | None = None,
        description: str = "My card was charged twice",
        category: str = "billing",
        priority: Priority = Priority.NORMAL,
        assignee: int | None = None,
        **kw: Any,
    ) -> int:
        if customer_id is None:
            customer_id = await self.customer()
        async with self.db.uow() as uow:
            ticket = await services.open_ticket(
                uow, customer_id=customer_id, description=description, category=category,
                priority=priority, channel=Channel.TELEGRAM, **kw,
            )  # fmt: skip
            assert ticket.id is not None
            if assignee is not None:
                await services.assign_ticket(uow, ticket.id, assignee, force=True)
            await uow.commit()
        return ticket.id

    async def get(self, url: str, headers: Headers | None = None, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.admin if headers is None else headers, **kw)

    async def post(self, url: str, headers: Headers | None = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self.admin if headers is None else headers, **kw)


def build_app(db: Database, *, settings: dict[str, Any] | None = None, **kw: Any) -> FastAPI:
    return create_admin_app(db, Settings(_env_file=None, **settings or {}), **kw)  # type: ignore[call-arg]


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    app = build_app(db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        api = Api(db=db, app=app, client=client)
        api.admin = await api.key("admin")
        yield api


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["type"]
    if code is not None:
        assert body["code"] == code
    return body


async def outbox_events(db: Database) -> list[tuple[str, dict[str, Any]]]:
    from sqlalchemy import select

    from core.db import tables as t

    async with db.engine.connect() as conn:
        rows = await conn.execute(
            select(t.outbox.c.event_type, t.outbox.c.payload).order_by(t.outbox.c.id)
        )
        return [(r[0], r[1]) for r in rows]
