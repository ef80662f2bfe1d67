"""The migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.db.database import Database
from core.db.migrate import head_revision, is_current
from core.db.tables import metadata


async def test_migrated_schema_matches_the_tables_in_code(db: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})  # type: ignore[arg-type]
        return list(compare_metadata(ctx, metadata))

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == [], "run scripts/regen_migration.sh (or add a revision)"


async def test_database_reports_current_revision(db: Database) -> None:
    assert head_revision() is not None
    assert await is_current(db)


async def test_postgres_has_the_full_text_search_index(pg_db: Database) -> None:
    from sqlalchemy import text

    async with pg_db.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_tickets_search'")
        )
    assert found is not None
    assert "gin" in found.lower()
    assert "to_tsvector" in found


async def test_postgres_send_pacing_is_unlogged(pg_db: Database) -> None:
    """A send slot is worth nothing after a crash: no write-ahead log, no fsync per send."""
    from sqlalchemy import text

    async with pg_db.engine.connect() as conn:
        persistence = await conn.scalar(
            text("SELECT relpersistence FROM pg_class WHERE relname = 'send_pacing'")
        )
    assert persistence in ("u", b"u")  # a "char": asyncpg gives bytes
