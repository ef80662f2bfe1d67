#!/usr/bin/env bash
# Regenerate the single initial migration from core/db/tables.py. Only while nothing has been
# released: once a schema ships, add new revisions instead.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f core/db/migrations/versions/0001_initial_schema.py
mv core/db/migrations/versions/0002_postgres_ticket_search.py /tmp/careline-0002.py  # hand-written; regenerate 0001 alone
.venv/bin/python - <<'PY'
import asyncio, tempfile
from alembic import command
from core.db.database import Database
from core.db.migrate import alembic_config

async def main() -> None:
    db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/gen.db")
    def gen(sync) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    async with db.engine.begin() as conn:
        await conn.run_sync(gen)
    await db.dispose()

asyncio.run(main())
PY
mv /tmp/careline-0002.py core/db/migrations/versions/0002_postgres_ticket_search.py
