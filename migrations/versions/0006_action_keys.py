"""action keys: a client action's idempotency key and result, so a resend is applied once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "live_action_keys",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_live_action_keys_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "key", "person_id", name=op.f("pk_live_action_keys")),
    )
    with op.batch_alter_table("live_action_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_live_action_keys_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("live_action_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_action_keys_created_at"))
    op.drop_table("live_action_keys")
