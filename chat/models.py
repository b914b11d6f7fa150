"""What the live gateway stores: rooms with their event log, chat, questions, polls, sanctions
and the moderation audit log.

People are referred to by id (a participant's or an organiser's); no IP address, user agent or
token is stored here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, new_id, utcnow


class Room(Base):
    """A session's live room: its settings and the counter that numbers its events."""

    __tablename__ = "live_rooms"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    slow_mode_seconds: Mapped[int] = mapped_column(Integer, default=0)
    pinned_question_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class RoomEvent(Base):
    """One pushed event as sent (`frame`), kept for replay to reconnecting clients."""

    __tablename__ = "live_events"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    # Space-separated: `all`, `staff`, `person:<id>`.
    audience: Mapped[str] = mapped_column(String(120))
    # The message or question it is about, so moderation can withdraw it from replay.
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    frame: Mapped[str] = mapped_column(Text)
    withdrawn: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ActionKey(Base):
    """A client action's idempotency key, once applied, with the result it was answered: a resend
    (the page sends unanswered actions again after reconnecting) gets that result and changes
    nothing. Kept a day (`chat.service.purge_expired`)."""

    __tablename__ = "live_action_keys"

    # In this order, so a batch finds its keys with `session_id = ? AND key IN (...)` on the
    # primary key's index, however many keys the room has stored.
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The `ok` reply's result, as JSON.
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class MessageStatus:
    visible = "visible"
    held = "held"
    deleted = "deleted"


class Message(Base):
    """A chat message or an announcement. A deleted message keeps no text."""

    __tablename__ = "live_messages"
    __table_args__ = (Index("ix_live_messages_author", "session_id", "author_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[str] = mapped_column(String(32))
    author_name: Mapped[str] = mapped_column(String(120))
    author_role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="chat")
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.visible)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class QuestionStatus:
    pending = "pending"
    approved = "approved"
    rejected = "rejected"


class Question(Base):
    __tablename__ = "live_questions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    asker_id: Mapped[str] = mapped_column(String(32), index=True)
    asker_name: Mapped[str] = mapped_column(String(120))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=QuestionStatus.pending)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    votes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class QuestionVote(Base):
    __tablename__ = "live_question_votes"

    question_id: Mapped[str] = mapped_column(
        ForeignKey("live_questions.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class Poll(Base):
    __tablename__ = "live_polls"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PollVote(Base):
    __tablename__ = "live_poll_votes"

    poll_id: Mapped[str] = mapped_column(
        ForeignKey("live_polls.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    option: Mapped[int] = mapped_column(Integer)


class Sanction(Base):
    """A mute (optionally until a time) or a removal of one person from one room."""

    __tablename__ = "live_sanctions"
    __table_args__ = (UniqueConstraint("session_id", "person_id", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    person_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # mute / removal
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """A moderation action, done or refused. Holds ids and settings, never message text.

    Refusals of one action by one person at one target are folded into one entry for a while:
    `count` of them, the first at `created_at`, the latest at `last_at`."""

    __tablename__ = "live_audit"
    __table_args__ = (
        # The organiser's pages, newest first (chat.service.audit_log).
        Index("ix_live_audit_event_created", "event_id", "created_at", "id"),
        # Finding the entry a repeated refusal folds into (chat.service.record_audit).
        Index("ix_live_audit_fold", "session_id", "actor_id", "action", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    actor_id: Mapped[str] = mapped_column(String(32))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # done / forbidden
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
