"""The whole role x route matrix (documented in admin_api/__init__.py).

Every row sets up fresh objects for each role, so a change made by one call never decides
another. A route missing from the matrix fails `test_the_matrix_covers_every_route`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert

from core.db import tables as t
from core.model import utcnow
from tests.admin_api.conftest import Api, Headers, assert_problem


@dataclass
class World:
    """One agent key (Grace) and tickets that are hers, a colleague's, or nobody's."""

    api: Api
    grace: int
    grace_key: Headers
    alan: int

    async def own(self) -> int:
        return await self.api.ticket(assignee=self.grace)

    async def others(self) -> int:
        return await self.api.ticket(assignee=self.alan)

    async def free(self) -> int:
        return await self.api.ticket()

    async def dead_letter(self) -> int:
        await self.free()
        async with self.api.db.uow() as uow:
            row = await uow.session.execute(
                insert(t.outbox_deliveries)
                .values(event_id=1, handler=f"h{utcnow().timestamp()}", status="dead",
                        attempts=9, updated_at=utcnow())
                .returning(t.outbox_deliveries.c.id)
            )  # fmt: skip
            await uow.session.commit()
            return int(row.scalar_one())


Setup = Callable[[World], Awaitable[tuple[str, dict[str, Any] | None]]]


def fixed(path: str, body: dict[str, Any] | None = None) -> Setup:
    async def setup(_: World) -> tuple[str, dict[str, Any] | None]:
        return path, body

    return setup


def on(make: str, suffix: str = "", body: Any = None) -> Setup:
    """A path on a fresh object: `on("own", "/status", {...})` -> /tickets/{new own}/status."""

    async def setup(w: World) -> tuple[str, dict[str, Any] | None]:
        if make in ("own", "others", "free"):
            return f"/tickets/{await getattr(w, make)()}{suffix}", body(w) if callable(
                body
            ) else body
        if make == "agent":
            return (
                f"/agents/{await w.api.agent(f'A{utcnow().timestamp()}'.replace('.', ''))}{suffix}",
                body,
            )
        if make == "customer":
            return f"/customers/{await w.api.customer()}{suffix}", body
        if make == "key":
            made = await w.api.post("/keys", json={"name": "spare", "role": "admin"})
            return f"/keys/{made.json()['id']}", None
        if make == "dead":
            return f"/dead-letters/{await w.dead_letter()}/retry", None
        if make in ("draft", "published"):
            made = await w.api.post("/articles", json={"title": "Hours", "body": "9 to 5."})
            article = made.json()["id"]
            if make == "published":
                await w.api.post(f"/articles/{article}/publish")
            return f"/articles/{article}{suffix}", body
        raise AssertionError(make)

    return setup


def reply_as(role_body: dict[str, Any]) -> Callable[[World], dict[str, Any]]:
    return lambda w: {**role_body, "agent_id": w.grace} if "agent_id" in role_body else role_body


MATRIX: list[tuple[str, str, Setup, int, int]] = [
    # method, route (as declared), setup, admin status, agent status
    ("GET", "/me", fixed("/me"), 200, 200),
    ("GET", "/keys", fixed("/keys"), 200, 403),
    ("POST", "/keys", fixed("/keys", {"name": "k", "role": "admin"}), 201, 403),
    ("DELETE", "/keys/{key_id}", on("key"), 204, 403),
    ("GET", "/agents", fixed("/agents"), 200, 200),
    ("GET", "/agents/{agent_id}", on("agent"), 200, 200),
    ("POST", "/agents", fixed("/agents", {"name": "N", "email": "n@example.com"}), 201, 403),
    ("PATCH", "/agents/{agent_id}", on("agent", "", {"capacity": 3}), 200, 403),
    ("POST", "/agents/{agent_id}/deactivate", on("agent", "/deactivate"), 200, 403),
    ("POST", "/agents/{agent_id}/activate", on("agent", "/activate"), 200, 403),
    ("GET", "/tickets", fixed("/tickets"), 200, 200),
    ("GET", "/tickets/{ticket_id}", on("others"), 200, 200),
    # Reading a ticket's file is reading the ticket; this one names no such file.
    ("GET", "/tickets/{ticket_id}/files/{stored_id}", on("others", "/files/" + "0" * 32),
     404, 404),
    ("POST", "/tickets/{ticket_id}/assign",
     on("free", "/assign", lambda w: {"agent_id": w.grace}), 200, 403),
    ("POST", "/tickets/{ticket_id}/unassign", on("own", "/unassign"), 200, 403),
    ("POST", "/tickets/{ticket_id}/priority", on("own", "/priority", {"priority": "high"}),
     200, 200),
    ("POST", "/tickets/{ticket_id}/priority", on("others", "/priority", {"priority": "high"}),
     200, 403),
    ("POST", "/tickets/auto-assign", fixed("/tickets/auto-assign"), 200, 403),
    ("POST", "/tickets/{ticket_id}/claim", on("free", "/claim"), 403, 200),
    ("POST", "/tickets/{ticket_id}/claim", on("others", "/claim"), 403, 409),
    ("POST", "/tickets/{ticket_id}/status", on("own", "/status", {"status": "waiting"}),
     200, 200),
    ("POST", "/tickets/{ticket_id}/status", on("others", "/status", {"status": "waiting"}),
     200, 403),
    ("POST", "/tickets/{ticket_id}/status", on("free", "/status", {"status": "waiting"}),
     200, 403),
    ("POST", "/tickets/{ticket_id}/notes", on("own", "/notes", {"body": "n"}), 201, 201),
    ("POST", "/tickets/{ticket_id}/notes", on("free", "/notes", {"body": "n"}), 201, 201),
    ("POST", "/tickets/{ticket_id}/notes", on("others", "/notes", {"body": "n"}), 201, 403),
    ("POST", "/tickets/{ticket_id}/replies",
     on("own", "/replies", lambda w: {"body": "hi", "agent_id": w.grace}), 201, 201),
    ("POST", "/tickets/{ticket_id}/replies",
     on("free", "/replies", lambda w: {"body": "hi", "agent_id": w.grace}), 201, 201),
    ("POST", "/tickets/{ticket_id}/replies",
     on("others", "/replies", lambda w: {"body": "hi", "agent_id": w.alan}), 201, 403),
    ("GET", "/settings/auto-assign", fixed("/settings/auto-assign"), 200, 403),
    ("PUT", "/settings/auto-assign", fixed("/settings/auto-assign", {"enabled": False}),
     200, 403),
    ("GET", "/customers/{customer_id}", on("customer"), 200, 200),
    ("GET", "/customers/{customer_id}/tickets", on("customer", "/tickets"), 200, 200),
    ("GET", "/customers/{customer_id}/export", on("customer", "/export"), 200, 403),
    ("POST", "/customers/{customer_id}/erase", on("customer", "/erase"), 200, 403),
    ("GET", "/dead-letters", fixed("/dead-letters"), 200, 403),
    ("POST", "/dead-letters/{delivery_id}/retry", on("dead"), 202, 403),
    ("GET", "/reports/agents", fixed("/reports/agents"), 200, 403),
    ("GET", "/reports/categories", fixed("/reports/categories"), 200, 403),
    ("GET", "/reports/daily", fixed("/reports/daily"), 200, 403),
    # Knowledge base: agents read and write drafts; admins publish, delete, import.
    ("GET", "/articles", fixed("/articles"), 200, 200),
    ("POST", "/articles", fixed("/articles", {"title": "T", "body": "B"}), 201, 201),
    ("GET", "/articles/{article_id}", on("draft"), 200, 200),
    ("PATCH", "/articles/{article_id}", on("draft", "", {"body": "new"}), 200, 200),
    ("PATCH", "/articles/{article_id}", on("published", "", {"body": "new"}), 200, 403),
    ("DELETE", "/articles/{article_id}", on("draft"), 204, 403),
    ("POST", "/articles/{article_id}/publish", on("draft", "/publish"), 200, 403),
    ("POST", "/articles/{article_id}/unpublish", on("published", "/unpublish"), 200, 403),
    ("GET", "/articles/{article_id}/versions", on("published", "/versions"), 200, 200),
    ("GET", "/articles/export", fixed("/articles/export"), 200, 200),
    ("GET", "/articles/gaps", fixed("/articles/gaps"), 200, 200),
    ("POST", "/articles/import", fixed("/articles/import", {"format": "markdown",
     "files": [{"name": "a.md", "content": "# Returns\n\n30 days."}]}), 200, 403),
    # Intent examples: everyone reads them; only admins change what the bot understands.
    ("GET", "/intents", fixed("/intents"), 200, 200),
    ("GET", "/intents/training", fixed("/intents/training"), 200, 200),
    ("GET", "/intents/{intent}/examples", fixed("/intents/greet/examples"), 200, 200),
    ("POST", "/intents/{intent}/examples",
     fixed("/intents/faq_parking/examples", {"text": "is there parking"}), 201, 403),
    ("DELETE", "/intents/{intent}/examples/{example_id}",
     fixed("/intents/greet/examples/d1abb6b7e45cb97e"), 204, 403),
]  # fmt: skip


def declared_routes(api: Api) -> set[tuple[str, str]]:
    paths = api.app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


async def test_the_matrix_covers_every_route(api: Api) -> None:
    assert declared_routes(api) == {(m, p) for m, p, *_ in MATRIX}


async def test_every_route_refuses_a_caller_without_a_key(api: Api) -> None:
    for method, path in sorted(declared_routes(api)):
        url = re.sub(r"\{\w+\}", "1", path)
        response = await api.client.request(method, url, json={})
        assert_problem(response, 401)


async def test_each_role_gets_exactly_what_the_matrix_says(api: Api) -> None:
    grace, grace_key = await api.agent_key("Grace", capacity=1000)
    alan = await api.agent("Alan", capacity=1000)
    world = World(api, grace, grace_key, alan)
    wrong = []
    for method, route, setup, admin_status, agent_status in MATRIX:
        for role, headers, expected in (
            ("admin", api.admin, admin_status),
            ("agent", grace_key, agent_status),
        ):
            url, body = await setup(world)
            response = await api.client.request(method, url, json=body, headers=headers)
            if response.status_code != expected:
                wrong.append(f"{role} {method} {route}: {response.status_code} {response.text}")
            elif expected == 403:
                assert_problem(response, 403, "forbidden")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("other", ["own", "free"])
async def test_an_agent_key_replies_only_as_its_own_agent(api: Api, other: str) -> None:
    grace, key = await api.agent_key("Grace")
    alan = await api.agent("Alan")
    ticket = await api.ticket(assignee=grace if other == "own" else None)
    response = await api.post(
        f"/tickets/{ticket}/replies", headers=key, json={"body": "hi", "agent_id": alan}
    )
    assert_problem(response, 403, "forbidden")
