"""attendance samples: people in each room per minute and server process

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attendance_samples",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("minute", app.db.UTCDateTime(), nullable=False),
        sa.Column("process_id", sa.String(length=32), nullable=False),
        sa.Column("watching", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_attendance_samples_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "minute", "process_id", name=op.f("pk_attendance_samples")
        ),
    )


def downgrade() -> None:
    op.drop_table("attendance_samples")
