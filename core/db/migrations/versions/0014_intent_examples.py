"""intent examples the team edits, and the models trained from them, shared by every replica.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "intent_examples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("removed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column("changed_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intent_examples")),
        sa.UniqueConstraint("intent", "text", name=op.f("uq_intent_examples_intent_text")),
    )
    op.create_table(
        "nlu_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("training_key", sa.String(length=64), nullable=True),
        sa.Column("training_by", sa.String(length=100), nullable=True),
        sa.Column("training_until", UTC_DATETIME, nullable=True),
        sa.Column("stage", sa.String(length=32), nullable=True),
        sa.Column("progress", sa.Double(), nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.Column("failed_key", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlu_state")),
    )
    op.execute("INSERT INTO nlu_state (id, revision) VALUES (1, 0)")
    op.create_table(
        "nlu_models",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("intents", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("trained_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_nlu_models")),
    )


def downgrade() -> None:
    op.drop_table("nlu_models")
    op.drop_table("nlu_state")
    op.drop_table("intent_examples")
