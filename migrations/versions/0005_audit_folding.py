"""audit folding: a count and the latest time on each audit entry; indexes for paging and folding

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("live_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("count", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("last_at", app.db.UTCDateTime(), nullable=True))
    # Every entry so far is one action: its latest time is its first.
    op.execute("UPDATE live_audit SET last_at = created_at")
    with op.batch_alter_table("live_audit", schema=None) as batch_op:
        batch_op.alter_column("last_at", existing_type=app.db.UTCDateTime(), nullable=False)
        # The paging index starts with event_id, so it serves what this one did.
        batch_op.drop_index("ix_live_audit_event_id")
        batch_op.create_index(
            "ix_live_audit_event_created", ["event_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_live_audit_fold",
            ["session_id", "actor_id", "action", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("live_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_live_audit_fold")
        batch_op.drop_index("ix_live_audit_event_created")
        batch_op.create_index("ix_live_audit_event_id", ["event_id"], unique=False)
        batch_op.drop_column("last_at")
        batch_op.drop_column("count")
