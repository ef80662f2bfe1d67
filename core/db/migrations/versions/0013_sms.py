"""SMS: the choices last texted to each number, delivery reports found by provider id,
customers' verified phone numbers with their opt-in to texts and calls, and codes by text.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sms_menus",
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.Column(
            "choices", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_sms_menus")),
    )
    for column in ("calls", "phone_verified", "texts"):
        op.add_column(
            "customers",
            sa.Column(column, sa.Boolean(), server_default=sa.text("false"), nullable=False),
        )
    op.add_column(
        "email_verifications",
        sa.Column("kind", sa.String(length=8), server_default="email", nullable=False),
    )
    op.create_index(
        "ix_outbox_deliveries_provider_id", "outbox_deliveries", ["provider_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_deliveries_provider_id", table_name="outbox_deliveries")
    with op.batch_alter_table("email_verifications") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("customers") as batch:
        for column in ("texts", "phone_verified", "calls"):
            batch.drop_column(column)
    op.drop_table("sms_menus")
