"""The console on the `db` fixture (SQLite and PostgreSQL), driven with httpx in-process,
mounted at /console as the server mounts it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_api.console.app import create_console_app
from admin_api.console.invitations import first_admin_link
from core import services
from core.config import Settings
from core.db.database import Database
from core.model import Channel, Priority
from tests.support.customers import register_customer

SECRET = "console-test-secret"
BASE = "http://testserver"
PASSWORD = "correct horse battery"


def field(html: str, name: str) -> str:
    """The value of a hidden input in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


@dataclass
class Person:
    client: httpx.AsyncClient
    csrf: str = ""

    async def page(self, path: str) -> httpx.Response:
        answer = await self.client.get(path)
        if answer.status_code == 200 and 'name="csrf"' in answer.text:
            self.csrf = field(answer.text, "csrf")
        return answer

    async def post(self, path: str, **data: Any) -> httpx.Response:
        if not self.csrf:
            await self.page("/console/")
        return await self.client.post(path, data={"csrf": self.csrf, **data})


@dataclass
class Console:
    db: Database
    app: FastAPI
    clients: list[httpx.AsyncClient]
    _customers: int = 0

    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url=BASE)
        self.clients.append(client)
        return client

    async def accept(
        self, link: str, *, name: str, email: str = "", password: str = PASSWORD
    ) -> Person:
        client = self.client()
        path = link.removeprefix(BASE)
        form = await client.get(path)
        assert form.status_code == 200, form.text
        data = {"form_token": field(form.text, "form_token"), "name": name,
                "password": password, "confirm": password}  # fmt: skip
        if email:
            data["email"] = email
        answer = await client.post(path, data=data)
        assert answer.status_code == 303, answer.text
        return Person(client)

    async def first_admin(self, email: str = "admin@example.com") -> Person:
        link = await first_admin_link(self.db, SECRET, BASE)
        assert link is not None
        return await self.accept(link, name="Ada Admin", email=email)

    async def sign_in(self, email: str, password: str = PASSWORD) -> tuple[Person, httpx.Response]:
        client = self.client()
        form = await client.get("/console/sign-in")
        answer = await client.post(
            "/console/sign-in",
            data={"form_token": field(form.text, "form_token"), "email": email,
                  "password": password},
        )  # fmt: skip
        return Person(client), answer

    async def customer(self, name: str = "Carla Customer") -> int:
        self._customers += 1
        async with self.db.uow() as uow:
            customer, _ = await register_customer(
                uow, channel=Channel.TELEGRAM, external_id=f"tg-{self._customers}",
                chat_id=f"chat-{self._customers}", display_name=name,
            )  # fmt: skip
            await uow.commit()
        assert customer.id is not None
        return customer.id

    async def ticket(self, description: str = "My parcel never came", **kw: Any) -> int:
        customer_id = await self.customer()
        async with self.db.uow() as uow:
            ticket = await services.open_ticket(
                uow, customer_id=customer_id, description=description, category="delivery",
                priority=Priority.NORMAL, channel=Channel.TELEGRAM, **kw,
            )  # fmt: skip
            await uow.commit()
        assert ticket.id is not None
        return ticket.id


def build(db: Database, **settings: Any) -> FastAPI:
    parent = FastAPI()
    config = Settings(_env_file=None, **settings)  # type: ignore[call-arg]
    parent.mount("/console", create_console_app(db, config, lambda: SECRET))
    return parent


@pytest.fixture
async def console(db: Database) -> AsyncIterator[Console]:
    found = Console(db=db, app=build(db), clients=[])
    try:
        yield found
    finally:
        for client in found.clients:
            await client.aclose()
