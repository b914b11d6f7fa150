"""People: organisers (who sign in with a password) and an event's participants with their roles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, new_id, utcnow


class Organiser(Base):
    __tablename__ = "organisers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParticipantKind(StrEnum):
    attendee = "attendee"  # registered themselves with a display name
    invited = "invited"  # chair, speaker or moderator, added by the organiser


class Participant(Base):
    """Someone taking part in one event. An attendee needs nothing but a display name."""

    __tablename__ = "participants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str] = mapped_column(String(80))
    # Optional, never shown to other people.
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # For chairs and speakers: "Head of Policy and Campaigns, Suzy Lamplugh Trust".
    affiliation: Mapped[str | None] = mapped_column(String(200), nullable=True)
    bio: Mapped[str | None] = mapped_column(Text, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Role(StrEnum):
    chair = "chair"
    speaker = "speaker"
    moderator = "moderator"


class SessionRole(Base):
    """What an invited participant does in one session."""

    __tablename__ = "session_roles"
    __table_args__ = (UniqueConstraint("session_id", "participant_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    participant_id: Mapped[str] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(default=0)
