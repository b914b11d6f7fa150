"""A session: one agenda item of an event (keynote, panel, talk or break), with its Q&A settings."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, new_id, utcnow


class SessionKind(StrEnum):
    keynote = "keynote"
    panel = "panel"
    talk = "talk"
    break_ = "break"


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16), default=SessionKind.talk.value)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Shown before joining, e.g. "discusses homicide and coercive control".
    content_note: Mapped[str | None] = mapped_column(Text, nullable=True)

    moderation_required: Mapped[bool] = mapped_column(Boolean, default=True)
    anonymous_questions_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether the chair and moderators see the name behind an anonymous question.
    chair_sees_asker_names: Mapped[bool] = mapped_column(Boolean, default=False)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
