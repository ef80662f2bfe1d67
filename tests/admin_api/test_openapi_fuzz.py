"""Schemathesis against the admin API's own OpenAPI document with all its checks: no server
errors, every answer as documented, schema-valid requests accepted, invalid ones refused,
authentication enforced. In-process (ASGI), on SQLite and on PostgreSQL, with a bounded
example count. A larger run against a real server:

    st run http://127.0.0.1:8000/api/v1/openapi.json --checks all \
        -H "Authorization: Bearer $KEY" --max-examples 100
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import insert, text

from admin_api.app import create_admin_app
from core import services
from core.access import hash_key, new_secret
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.migrate import migrate
from core.model import Channel, utcnow
from tests.support.customers import register_customer

# Far from the small ids the generator favours, so a generated DELETE /keys/{id} cannot
# revoke the key the run itself uses.
FUZZ_KEY_ID = 7_654_321
FUZZ_KEY = new_secret()


async def _seed(db: Database) -> None:
    async with db.uow() as uow:
        now = utcnow()
        await uow.session.execute(
            insert(t.api_keys).values(
                id=FUZZ_KEY_ID, name="fuzz", role="admin", prefix=FUZZ_KEY[:12],
                key_hash=hash_key(FUZZ_KEY), created_at=now,
            )
        )  # fmt: skip
        grace = await services.create_agent(uow, name="Grace", email="grace@example.com")
        await services.create_agent(uow, name="Alan", email="alan@example.com", capacity=1)
        for n in range(3):
            customer, identity = await register_customer(
                uow, channel=Channel.TELEGRAM, external_id=f"u{n}", chat_id=f"c{n}",
                display_name=f"Customer {n}",
            )  # fmt: skip
            assert customer.id is not None and grace.id is not None
            ticket = await services.open_ticket(
                uow, customer_id=customer.id, description=f"Refund request {n}",
                category="billing", identity_id=identity.id,
            )  # fmt: skip
            assert ticket.id is not None
            if n == 0:
                await services.assign_ticket(uow, ticket.id, grace.id)
        await uow.commit()
        event_id = await uow.session.scalar(select_first_outbox())
        await uow.session.execute(
            insert(t.outbox_deliveries).values(
                event_id=event_id, handler="slack.open_thread", status="dead", attempts=12,
                last_error="boom", updated_at=now,
            )
        )  # fmt: skip
        await uow.session.commit()


def select_first_outbox() -> Any:
    from sqlalchemy import select

    return select(t.outbox.c.id).order_by(t.outbox.c.id).limit(1)


class Backend:
    """The ASGI app schemathesis calls. The `fuzz_backend` fixture picks the database; the
    first request then builds, migrates and seeds it on schemathesis' own event loop."""

    def __init__(self) -> None:
        self.target: tuple[str, bool] | None = None
        self.db: Database | None = None
        self.app: FastAPI = create_admin_app(
            # Serves the OpenAPI document only: this database is never opened.
            Database(f"sqlite+aiosqlite:///{tempfile.gettempdir()}/careline-unused.db"),
            Settings(_env_file=None),  # type: ignore[call-arg]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/__close":
            await self.close()
        elif self.db is None and self.target is not None and scope["path"] != "/openapi.json":
            await self.start(*self.target)
        await self.app(scope, receive, send)

    async def start(self, url: str, fresh_postgres: bool) -> None:
        db = self.db = Database(url, pool_size=5)
        if fresh_postgres:
            names = ", ".join(tb.name for tb in reversed(t.metadata.sorted_tables))
            async with db.engine.begin() as conn:
                await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            await migrate(db)
        await _seed(db)
        self.app = create_admin_app(
            db,
            # The limiter stays in place with limits this run cannot reach: the fuzzer's key
            # sends thousands of requests a minute, and the `ignored_auth` check sends an
            # invalid key for every operation (a 429 there would not prove a 401).
            Settings(  # type: ignore[call-arg]
                _env_file=None, api_requests_per_minute=10**6, api_failed_keys_per_minute=10**6
            ),
        )

    async def close(self) -> None:
        if self.db is not None:
            await self.db.dispose()
        self.db = None


BACKEND = Backend()
schema = schemathesis.openapi.from_asgi("/openapi.json", BACKEND)
# Keeps the run under a minute: the coverage phase (boundary and negative values of every
# parameter) plus a few random examples, without probing every HTTP method on every path.
schema.config.phases.update(phases=["coverage", "fuzzing"])
schema.config.phases.coverage.unexpected_methods = set()


# PostgreSQL by default: it is the production database and the one whose driver refuses
# what SQLite lets through (NUL characters, out-of-range integers). CARELINE_FUZZ_BACKENDS
# picks others, e.g. "sqlite,postgres" (each takes about 40 s).
FUZZ_BACKENDS = os.environ.get("CARELINE_FUZZ_BACKENDS", "postgres").split(",")


@pytest.fixture(scope="module", params=FUZZ_BACKENDS)
def fuzz_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("fuzz") / "careline.db"
        BACKEND.target = (f"sqlite+aiosqlite:///{path}", False)
    elif request.getfixturevalue("pg_cluster") is None:
        # No PostgreSQL on this machine: fuzz SQLite rather than nothing.
        path = tmp_path_factory.mktemp("fuzz") / "careline.db"
        BACKEND.target = (f"sqlite+aiosqlite:///{path}", False)
    else:
        BACKEND.target = (request.getfixturevalue("_pg_migrated"), True)
    yield request.param
    with asgi.get_client(BACKEND) as client:
        client.get("http://testserver/__close")
    BACKEND.target = None


# Request rules JSON Schema cannot state (admin_api/__init__.py documents them): a schema-valid
# request may break one, and gets a 422 with that rule's own code.
RULES_NO_SCHEMA_STATES = {
    "invalid_cursor",
    "invalid_period",
    "reassign_to_self",
    "agent_id_required",
    "invalid_file",
}


def schema_valid_data_is_accepted(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 422 and response.json().get("code") in RULES_NO_SCHEMA_STATES:
        return None
    return positive_data_acceptance(ctx, response, case)


@schema.parametrize()
@settings(
    max_examples=2,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_admin_api_answers_every_generated_request_as_documented(
    case: Any, fuzz_backend: str
) -> None:
    # Every built-in check, as `st run --checks all`; state refusals (a closed ticket, ...)
    # are 409, which schema-valid data may get.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {FUZZ_KEY}"},
        excluded_checks=[positive_data_acceptance],
        additional_checks=[schema_valid_data_is_accepted],
    )
