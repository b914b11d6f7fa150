"""Access tokens: what a signed-in browser's cookie (or a socket's first frame) carries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


class AccessToken(Base):
    __tablename__ = "access_tokens"

    # sha256 of the token; the token itself exists only in the person's browser.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    organiser_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisers.id", ondelete="CASCADE"), nullable=True, index=True
    )
    participant_id: Mapped[str | None] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
