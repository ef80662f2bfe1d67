"""The SQLite durability trade-off docs/resilience.md states is the one the engine makes."""

from __future__ import annotations

from pathlib import Path

from core.db.database import Database

DOC = Path(__file__).resolve().parents[2] / "docs" / "resilience.md"
LEVELS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}  # https://sqlite.org/pragma.html


async def test_sqlite_synchronous_level_is_the_documented_trade_off(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}")
    try:
        async with db.engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    finally:
        await db.dispose()
    assert f"`PRAGMA synchronous={LEVELS[int(level or 0)]}`" in DOC.read_text(encoding="utf-8")


async def test_durable_commits_sync_the_log_at_every_commit(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'careline.db'}", sqlite_durable=True)
    try:
        async with db.engine.connect() as conn:
            level = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
    finally:
        await db.dispose()
    assert LEVELS[int(level or 0)] == "FULL"
    assert "`CARELINE_SQLITE_DURABLE_COMMITS=true`" in DOC.read_text(encoding="utf-8")
