"""PostgreSQL full-text index for ticket search (SQLite searches with LIKE).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Must be the expression of core.db.tables.ticket_search_document(), so the planner uses it.
DOCUMENT = "to_tsvector('simple'::regconfig, ((subject || ' ') || description))"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_tickets_search", "tickets", [sa.text(DOCUMENT)], postgresql_using="gin"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tickets_search", table_name="tickets")
