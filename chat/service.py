"""Room-wide services: who someone is in a room, room rows, sanctions, views of stored things,
the state and replay a joining socket gets, the audit log, and the retention purge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import Row, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agenda.models import Session
from app.auth.service import Principal
from app.errors import Forbidden
from app.event.models import Event
from chat.models import (
    AuditEntry,
    Message,
    MessageStatus,
    Poll,
    PollVote,
    Question,
    QuestionStatus,
    QuestionVote,
    Room,
    RoomEvent,
    Sanction,
)
from chat.protocol import (
    JoinResult,
    MessageView,
    PollView,
    QuestionView,
    Role,
    RoomState,
    You,
)


def role_in_room(principal: Principal, *, event: Event, session_id: str) -> Role:
    """The principal's role in a session's room, or `auth.forbidden` if not at this event."""
    if principal.organiser is not None:
        if principal.organiser.id == event.organiser_id:
            return Role.organiser
        raise Forbidden("auth.forbidden", "Only this event's organiser may join as organiser.")
    assert principal.participant is not None
    if principal.participant.event_id != event.id:
        raise Forbidden("auth.forbidden", "You are not registered for this event.")
    role = principal.role_in(session_id)
    return Role(role) if role else Role.attendee


async def ensure_room(db: AsyncSession, *, session_id: str) -> Room:
    """The session's room row, created on first use (safely when two processes race)."""
    room = await db.get(Room, session_id, populate_existing=True)
    if room is not None:
        # Every join comes here: only the first one of a room should take the write lock.
        return room
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    await db.execute(
        insert(Room)
        .values(session_id=session_id, last_seq=0, locked=False, slow_mode_seconds=0)
        .on_conflict_do_nothing()
    )
    room = await db.get(Room, session_id, populate_existing=True)
    assert room is not None
    return room


async def sanction(
    db: AsyncSession, *, session_id: str, person_id: str, kind: str
) -> Sanction | None:
    return await db.scalar(
        select(Sanction).where(
            Sanction.session_id == session_id,
            Sanction.person_id == person_id,
            Sanction.kind == kind,
        )
    )


async def is_muted(db: AsyncSession, *, session_id: str, person_id: str, now: datetime) -> bool:
    mute = await sanction(db, session_id=session_id, person_id=person_id, kind="mute")
    return mute is not None and (mute.until is None or mute.until > now)


# -- views ---------------------------------------------------------------------------------------


def message_view(message: Message) -> MessageView:
    return MessageView(
        id=message.id,
        kind=message.kind,  # type: ignore[arg-type]
        author_id=message.author_id,
        author=message.author_name,
        author_role=Role(message.author_role),
        text=message.text,
        at=message.created_at,
    )


def question_view(question: Question, *, reveal: bool = False) -> QuestionView:
    """`reveal`: show an anonymous asker's name (a chair, when the session allows it)."""
    return QuestionView(
        id=question.id,
        text=question.text,
        status=question.status,  # type: ignore[arg-type]
        anonymous=question.anonymous,
        asker=question.asker_name if (reveal or not question.anonymous) else None,
        votes=question.votes,
        answered=question.answered,
        at=question.created_at,
    )


def poll_view(poll: Poll, counts: list[int] | None = None) -> PollView:
    return PollView(
        id=poll.id,
        question=poll.question,
        options=list(poll.options),
        status=poll.status,  # type: ignore[arg-type]
        counts=counts,
    )


def room_state(room: Room) -> RoomState:
    return RoomState(
        locked=room.locked,
        slow_mode_seconds=room.slow_mode_seconds,
        pinned_question_id=room.pinned_question_id,
    )


async def poll_counts(db: AsyncSession, *, poll: Poll) -> list[int]:
    counts = [0] * len(poll.options)
    rows = await db.execute(
        select(PollVote.option, func.count())
        .where(PollVote.poll_id == poll.id)
        .group_by(PollVote.option)
    )
    for option, count in rows:
        if 0 <= option < len(counts):
            counts[option] = count
    return counts


# -- joining -------------------------------------------------------------------------------------


@asynccontextmanager
async def consistent_read(
    sessionmaker: async_sessionmaker[AsyncSession], *, session_id: str
) -> AsyncIterator[AsyncSession]:
    """A session whose reads all see the room as of one instant (one seq)."""
    async with sessionmaker() as db:
        if db.get_bind().dialect.name == "postgresql":
            await db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        else:
            # The sqlite3 driver opens no transaction before a SELECT, so each read would see
            # its own instant. An explicit BEGIN makes them one WAL read transaction: one
            # snapshot, without taking the write lock (which held up the chair's commits).
            connection = await db.connection()
            await connection.exec_driver_sql("BEGIN")
        try:
            yield db
        finally:
            await db.rollback()


async def room_snapshot(
    db: AsyncSession,
    *,
    session: Session,
    you: You,
    watching: int,
    staff: bool,
    history: int,
) -> JoinResult:
    """Everything a freshly joined socket shows, as of the room's current seq."""
    room = await db.get(Room, session.id, populate_existing=True)
    assert room is not None
    messages = list(
        await db.scalars(
            select(Message)
            .where(Message.session_id == session.id, Message.status == MessageStatus.visible)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(history)
        )
    )
    approved = await db.scalars(
        select(Question)
        .where(Question.session_id == session.id, Question.status == QuestionStatus.approved)
        .order_by(Question.votes.desc(), Question.created_at, Question.id)
        .limit(500)
    )
    mine = await db.scalars(
        select(Question)
        .where(
            Question.session_id == session.id,
            Question.asker_id == you.person_id,
            Question.status != QuestionStatus.approved,
        )
        .order_by(Question.created_at)
    )
    voted = await db.scalars(
        select(QuestionVote.question_id)
        .join(Question, Question.id == QuestionVote.question_id)
        .where(Question.session_id == session.id, QuestionVote.person_id == you.person_id)
    )
    shown = ("draft", "open", "closed") if staff else ("open", "closed")
    polls = []
    for poll in await db.scalars(
        select(Poll)
        .where(Poll.session_id == session.id, Poll.status.in_(shown))
        .order_by(Poll.created_at)
    ):
        counts = await poll_counts(db, poll=poll) if staff or poll.status == "closed" else None
        polls.append(poll_view(poll, counts))
    result = JoinResult(
        seq=room.last_seq,
        resumed=False,
        you=you,
        room=room_state(room),
        watching=watching,
        messages=[message_view(m) for m in reversed(messages)],
        questions=[question_view(q) for q in approved],
        my_questions=[question_view(q) for q in mine],
        voted=list(voted),
        polls=polls,
    )
    if staff:
        reveal = session.chair_sees_asker_names
        queue = await db.scalars(
            select(Question)
            .where(Question.session_id == session.id, Question.status == QuestionStatus.pending)
            .order_by(Question.created_at, Question.id)
        )
        held = await db.scalars(
            select(Message)
            .where(Message.session_id == session.id, Message.status == MessageStatus.held)
            .order_by(Message.created_at, Message.id)
        )
        result.queue = [question_view(q, reveal=reveal) for q in queue]
        result.held = [message_view(m) for m in held]
    return result


async def missed_events(
    db: AsyncSession, *, session_id: str, after: int, window: int
) -> Sequence[Row[int, str, str, bool]] | None:
    """The room's events after seq `after`, in order; None when they cannot all be replayed
    (further back than `window`, purged, or a seq this room never reached)."""
    current = await db.scalar(select(Room.last_seq).where(Room.session_id == session_id))
    if current is None or after > current:
        return None
    rows = (
        await db.execute(
            select(RoomEvent.seq, RoomEvent.audience, RoomEvent.frame, RoomEvent.withdrawn)
            .where(RoomEvent.session_id == session_id, RoomEvent.seq > after)
            .order_by(RoomEvent.seq)
            .limit(window + 1)
        )
    ).all()
    if len(rows) > window:
        return None
    if not rows:
        return [] if current <= after else None
    return rows if rows[0].seq == after + 1 else None


# -- audit and retention -------------------------------------------------------------------------


async def audit_log(db: AsyncSession, *, event: Event, limit: int = 1000) -> list[AuditEntry]:
    """The event's moderation actions, newest first."""
    rows = await db.scalars(
        select(AuditEntry)
        .where(AuditEntry.event_id == event.id)
        .order_by(AuditEntry.created_at.desc(), AuditEntry.id)
        .limit(limit)
    )
    return list(rows)


async def purge_expired(db: AsyncSession, *, now: datetime) -> int:
    """Delete chat, questions, polls and replay events older than each event's retention."""
    removed = 0
    for event_id, days in await db.execute(select(Event.id, Event.retention_days)):
        cutoff = now - timedelta(days=days)
        sessions = select(Session.id).where(Session.event_id == event_id)
        for model in (Message, Question, Poll, RoomEvent):
            result = await db.execute(
                delete(model).where(model.session_id.in_(sessions), model.created_at < cutoff)
            )
            removed += result.rowcount  # type: ignore[attr-defined]
    await db.commit()
    return removed
