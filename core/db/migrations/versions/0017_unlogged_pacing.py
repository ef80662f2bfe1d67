"""send pacing on PostgreSQL is an unlogged table: a reservation is a slot in the next
second, worth nothing after a crash (an empty table paces the same), so it need not wait for
the write-ahead log's fsync on every send. SQLite has no such tables (and one process).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE send_pacing SET UNLOGGED")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE send_pacing SET LOGGED")
