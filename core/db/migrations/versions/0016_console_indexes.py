"""indexes for the console at 1,000,000 tickets: each agent's open load, a category and
priority together, and the reports' periods (first responses and resolutions).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status IN ('new', 'open', 'waiting')")


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_active_assignee", ["assignee_id"],
            postgresql_where=ACTIVE, sqlite_where=ACTIVE,
        )  # fmt: skip
        batch_op.create_index(
            "ix_tickets_category_priority", ["category", "priority", "created_at"]
        )
        batch_op.create_index("ix_tickets_resolved_at", ["resolved_at"])
        batch_op.create_index("ix_tickets_first_response_at", ["first_response_at"])


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_first_response_at")
        batch_op.drop_index("ix_tickets_resolved_at")
        batch_op.drop_index("ix_tickets_category_priority")
        batch_op.drop_index(
            "ix_tickets_active_assignee", postgresql_where=ACTIVE, sqlite_where=ACTIVE
        )
