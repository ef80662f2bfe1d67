"""Rate limits: the admin API's per-key and failed-key limits, and the limiter behind them
(in the database and in process), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bots.housekeeping import Housekeeping
from core.config import Settings
from core.db import tables as t
from core.db.database import Database
from core.db.ratelimit import InProcessRateLimiter, SqlRateLimiter, rate_limiter_for
from core.model import utcnow
from core.ports import RateLimit, RateLimiter
from tests.admin_api.conftest import Api, assert_problem, build_app

ATTACKER = ("203.0.113.7", 5000)
BYSTANDER = ("198.51.100.1", 5000)
BAD = {"Authorization": "Bearer clk_guess"}


def client(app: Any, address: tuple[str, int] = BYSTANDER) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=address)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def new_key(db: Database, role: str = "admin") -> dict[str, str]:
    return await Api(db=db, app=None, client=None).key(role)  # type: ignore[arg-type]


# --- admin API ---------------------------------------------------------------------------


async def test_a_valid_key_is_served_from_an_address_throttled_for_invalid_keys(
    db: Database,
) -> None:
    # Behind a proxy that hides client addresses, every caller shares the attacker's address.
    app = build_app(db, settings={"api_failed_keys_per_minute": 3})
    good = await new_key(db)
    async with client(app, ATTACKER) as attacker:
        for _ in range(3):
            assert_problem(await attacker.get("/me", headers=BAD), 401, "invalid_key")
        blocked = await attacker.get("/me", headers=BAD)
        assert_problem(blocked, 429, "too_many_failed_keys")
        assert 1 <= int(blocked.headers["retry-after"]) <= 60
        for _ in range(5):
            assert (await attacker.get("/me", headers=good)).status_code == 200
        assert_problem(await attacker.get("/me", headers=BAD), 429, "too_many_failed_keys")
    async with client(app, BYSTANDER) as bystander:
        assert_problem(await bystander.get("/me", headers=BAD), 401, "invalid_key")


async def test_a_key_over_its_request_limit_gets_429_with_retry_after(db: Database) -> None:
    app = build_app(db, settings={"api_requests_per_minute": 3})
    busy, other = await new_key(db), await new_key(db, "admin")
    async with client(app) as http:
        for _ in range(3):
            assert (await http.get("/me", headers=busy)).status_code == 200
        refused = await http.get("/tickets", headers=busy)
        assert_problem(refused, 429, "too_many_requests")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert (await http.get("/me", headers=other)).status_code == 200  # each key its own


async def test_the_openapi_lists_429_with_retry_after_on_every_operation(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            too_many = op["responses"].get("429")
            assert too_many is not None, (method, path)
            assert "Retry-After" in too_many["headers"], (method, path)


@pytest.mark.postgres
async def test_two_replicas_share_the_key_and_failed_key_limits(pg_db: Database) -> None:
    other_db = Database(pg_db.url)
    try:
        limits = {"api_requests_per_minute": 4, "api_failed_keys_per_minute": 2}
        replicas = [build_app(pg_db, settings=limits), build_app(other_db, settings=limits)]
        good = await new_key(pg_db)
        async with client(replicas[0], ATTACKER) as one, client(replicas[1], ATTACKER) as two:
            statuses = [(await c.get("/me", headers=good)).status_code for c in (one, two) * 3]
            assert statuses == [200, 200, 200, 200, 429, 429]
            failed = [(await c.get("/me", headers=BAD)).status_code for c in (one, two, one)]
            assert failed == [401, 401, 429]
    finally:
        await other_db.dispose()


# --- the limiter -------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def limiters(db: Database, clock: Clock) -> list[RateLimiter]:
    return [SqlRateLimiter(db, clock=clock), InProcessRateLimiter(clock=clock)]


async def test_a_limit_refuses_past_its_hits_and_lifts_when_its_window_ends(db: Database) -> None:
    clock = Clock()
    limit = RateLimit("test.lift", 2, 10)
    for limiter in limiters(db, clock):
        clock.advance(100)  # a fresh window for each implementation
        assert [await limiter.hit(limit, "k") for _ in range(2)] == [0, 0]
        clock.advance(4)
        assert await limiter.hit(limit, "k") == 6  # seconds left in the window
        assert await limiter.hit(limit, "other") == 0
        clock.advance(6)
        assert await limiter.hit(limit, "k") == 0, type(limiter).__name__


async def test_a_zero_limit_is_off(db: Database) -> None:
    clock = Clock()
    for limiter in limiters(db, clock):
        assert {await limiter.hit(RateLimit("test.off", 0, 60), "k") for _ in range(5)} == {0}


async def test_sqlite_counts_in_process_and_postgres_in_the_database(db: Database) -> None:
    limiter = rate_limiter_for(db)
    assert isinstance(limiter, InProcessRateLimiter if db.is_sqlite else SqlRateLimiter)


async def test_the_in_process_limiter_keeps_a_bounded_number_of_keys() -> None:
    limiter = InProcessRateLimiter(max_keys=100)
    limit = RateLimit("test.flood", 1, 60)
    for address in range(1000):
        await limiter.hit(limit, f"10.0.{address // 256}.{address % 256}")
    assert len(limiter._windows) <= 100


@pytest.mark.postgres
async def test_concurrent_hits_from_two_replicas_let_exactly_the_limit_through(
    pg_db: Database,
) -> None:
    other_db = Database(pg_db.url)
    try:
        limit = RateLimit("test.race", 25, 60)
        replicas = [SqlRateLimiter(pg_db), SqlRateLimiter(other_db)]
        waits = await asyncio.gather(*(replicas[i % 2].hit(limit, "shared") for i in range(60)))
    finally:
        await other_db.dispose()
    assert sum(1 for w in waits if w == 0) == 25


async def test_housekeeping_deletes_ended_windows(db: Database) -> None:
    clock = Clock()
    clock.advance(-3600)
    await SqlRateLimiter(db, clock=clock).hit(RateLimit("test.old", 5, 60), "gone")
    await SqlRateLimiter(db).hit(RateLimit("test.live", 5, 60), "kept")
    keeper = Housekeeping(db, Settings(_env_file=None, auto_assign=False))  # type: ignore[call-arg]
    assert (await keeper.tick())["rate_limit_windows_ended"] == 1
    async with db.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(t.rate_limits))
    assert left == 1
