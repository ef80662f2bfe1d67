"""languages: the languages each agent answers in, each ticket's customer language, and
whether a customer chose theirs.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("customers") as customers:
        customers.add_column(
            sa.Column("language_chosen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("agents") as agents:
        agents.add_column(sa.Column("languages", Json, server_default="[]", nullable=False))
    with op.batch_alter_table("tickets") as tickets:
        tickets.add_column(
            sa.Column("language", sa.String(length=16), server_default="en", nullable=False)
        )
    # Tickets opened before: their customer's language as it is now.
    op.execute(
        "UPDATE tickets SET language = lower(substr(coalesce((SELECT c.language FROM customers c"
        " WHERE c.id = tickets.customer_id), 'en'), 1, 2))"
    )


def downgrade() -> None:
    with op.batch_alter_table("tickets") as tickets:
        tickets.drop_column("language")
    with op.batch_alter_table("agents") as agents:
        agents.drop_column("languages")
    with op.batch_alter_table("customers") as customers:
        customers.drop_column("language_chosen")
