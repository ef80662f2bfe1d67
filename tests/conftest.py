"""Shared fixtures: the same tests run on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from core.db.database import Database
from core.db.migrate import migrate
from core.db.tables import metadata
from tests.support.pgcluster import PgCluster, find_bindir
from tests.support.s3 import s3_server  # noqa: F401 (a fixture for every test)

BACKENDS = ["sqlite", "postgres"]
T = TypeVar("T")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster | None]:
    """A PostgreSQL cluster for the session, or None when no server binaries are installed.

    In CI (`CI=true`) a missing server is an error, not a skip.
    """
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL server binaries are missing (install `postgresql`)")
        yield None
        return
    cluster = PgCluster(bindir, track_statements=True).start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
async def own_cluster() -> AsyncIterator[PgCluster]:
    """A PostgreSQL cluster of the test's own: restarting the session's would upset other
    tests' pools."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server available")
    cluster = await asyncio.to_thread(PgCluster(bindir).start)
    try:
        yield cluster
    finally:
        await asyncio.to_thread(cluster.destroy)


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster | None) -> str:
    if pg_cluster is None:
        pytest.skip("no PostgreSQL server available")
    return pg_cluster.url()


def run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on its own loop, even from inside a running loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _migrate_url(url: str) -> None:
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def _pg_migrated(pg_url: str) -> str:
    run_in_thread(_migrate_url(pg_url))
    return pg_url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_in_thread(_migrate_url(f"sqlite+aiosqlite:///{path}"))
    return path


async def _fresh_sqlite(template: Path, folder: Path) -> Database:
    path = folder / "careline.db"
    shutil.copyfile(template, path)
    return Database(f"sqlite+aiosqlite:///{path}")


async def _fresh_postgres(url: str) -> Database:
    db = Database(url, pool_size=5)
    names = ", ".join(t.name for t in reversed(metadata.sorted_tables))
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return db


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        database = await _fresh_sqlite(request.getfixturevalue("_sqlite_template"), tmp_path)
    else:
        database = await _fresh_postgres(request.getfixturevalue("_pg_migrated"))
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path, _sqlite_template: Path) -> AsyncIterator[Database]:
    database = await _fresh_sqlite(_sqlite_template, tmp_path)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def pg_db(_pg_migrated: str) -> AsyncIterator[Database]:
    database = await _fresh_postgres(_pg_migrated)
    try:
        yield database
    finally:
        await database.dispose()
