"""rate_limits: fixed-window hit counters shared by every replica (web chat, admin API).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("window_ends", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", "key", name=op.f("pk_rate_limits")),
    )
    op.create_index("ix_rate_limits_window_ends", "rate_limits", ["window_ends"])


def downgrade() -> None:
    op.drop_index("ix_rate_limits_window_ends", table_name="rate_limits")
    op.drop_table("rate_limits")
