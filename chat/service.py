"""Room-wide services: who someone is in a room, room rows, sanctions, views of stored things,
the state and replay a joining socket gets, the audit log, and the retention purge."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Row, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agenda.models import Session
from app.auth.service import Principal
from app.db import Base, new_id, utcnow
from app.errors import Forbidden, Invalid
from app.event.models import Event
from chat.batch_rows import BatchRows
from chat.models import (
    ActionKey,
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
    ACTIONS,
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


async def add_once(db: AsyncSession, model: type[Base], **values: object) -> bool:
    """Insert a row unless one with its key exists (another process may have stored the same
    vote a moment ago): True when this one was stored. One statement, and nothing written when
    it was there, so the action can be refused without undoing anything."""
    insert = pg_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    done = await db.execute(insert(model).values(**values).on_conflict_do_nothing())
    return bool(done.rowcount)  # type: ignore[attr-defined]


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


def question_view(question: Question | Row[Any], *, reveal: bool = False) -> QuestionView:
    """`reveal`: show an anonymous asker's name (a chair, when the session allows it). From a
    loaded question, or a row of its table (as an UPDATE ... RETURNING gives it)."""
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


# What a join result may hold of each part, in bytes of JSON, so that it stays small (about 30 KB
# at most) however long the room's history; the page fetches the rest with `room.history`.
JOIN_BUDGET = {
    "messages": 9_000,
    "questions": 6_000,
    "my_questions": 2_000,
    "polls": 3_000,
    "queue": 5_000,
    "held": 2_000,
}
QUESTIONS_ON_JOIN = 20
MY_QUESTIONS_ON_JOIN = 10
POLLS_ON_JOIN = 10
QUEUE_ON_JOIN = 50
# A page of `room.history`.
HISTORY_PAGE = 50
HISTORY_BUDGET = 24_000

V = TypeVar("V", bound=BaseModel)


def within(views: Sequence[V], budget: int) -> list[V]:
    """The first of `views` whose JSON fits in `budget` bytes together."""
    kept: list[V] = []
    for view in views:
        budget -= len(view.model_dump_json()) + 1
        if budget < 0:
            break
        kept.append(view)
    return kept


def position_cursor(at: datetime, item_id: str) -> str:
    """An opaque cursor: where a page after the item at (`at`, `item_id`) starts."""
    raw = f"{at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_position(cursor: str) -> tuple[datetime, str]:
    bad = Invalid("request.invalid", "This is not a cursor from a page.", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, item_id = raw.split("|")
        at = datetime.fromisoformat(when)
        if at.tzinfo is None or not (item_id.isascii() and item_id.isalnum()):
            raise ValueError
        at = at.astimezone(UTC)
    except (ValueError, OverflowError):  # not base64, UTF-8, two parts, a time in range, an id
        raise bad from None
    return at, item_id


def _read_offset(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 9:
        raise Invalid("request.invalid", "This is not a cursor from a page.", field="cursor")
    return int(cursor)


async def _voted(db: AsyncSession, person_id: str, question_ids: list[str]) -> list[str]:
    if not question_ids:
        return []
    return list(
        await db.scalars(
            select(QuestionVote.question_id).where(
                QuestionVote.person_id == person_id, QuestionVote.question_id.in_(question_ids)
            )
        )
    )


def _approved(session_id: str) -> Any:
    return (
        select(Question)
        .where(Question.session_id == session_id, Question.status == QuestionStatus.approved)
        .order_by(Question.votes.desc(), Question.created_at, Question.id)
    )


def _visible_messages(session_id: str) -> Any:
    return (
        select(Message)
        .where(Message.session_id == session_id, Message.status == MessageStatus.visible)
        .order_by(Message.created_at.desc(), Message.id.desc())
    )


def _waiting(model: type[Question] | type[Message], session_id: str, status: str) -> Any:
    return (
        select(model)
        .where(model.session_id == session_id, model.status == status)
        .order_by(model.created_at, model.id)
    )


async def room_snapshot(
    db: AsyncSession,
    *,
    session: Session,
    you: You,
    watching: int,
    staff: bool,
    history: int,
) -> JoinResult:
    """What a freshly joined socket shows, as of the room's current seq: the latest messages,
    the approved questions with most votes, the person's own, the polls, and for moderators the
    oldest of the queue and of held messages; each part within its `JOIN_BUDGET`, with a cursor
    in `more` where there is more to fetch."""
    room = await db.get(Room, session.id, populate_existing=True)
    assert room is not None
    more: dict[str, str] = {}
    rows = list(await db.scalars(_visible_messages(session.id).limit(history + 1)))
    messages = within([message_view(m) for m in rows[:history]], JOIN_BUDGET["messages"])
    if len(rows) > len(messages) and messages:
        more["messages"] = position_cursor(messages[-1].at, messages[-1].id)
    rows = list(await db.scalars(_approved(session.id).limit(QUESTIONS_ON_JOIN + 1)))
    questions = within(
        [question_view(q) for q in rows[:QUESTIONS_ON_JOIN]], JOIN_BUDGET["questions"]
    )
    if len(rows) > len(questions):
        more["questions"] = str(len(questions))
    mine = await db.scalars(
        select(Question)
        .where(
            Question.session_id == session.id,
            Question.asker_id == you.person_id,
            Question.status != QuestionStatus.approved,
        )
        .order_by(Question.created_at.desc())
        .limit(MY_QUESTIONS_ON_JOIN)
    )
    my_questions = within([question_view(q) for q in mine], JOIN_BUDGET["my_questions"])
    shown = ("draft", "open", "closed") if staff else ("open", "closed")
    polls = []
    for poll in await db.scalars(
        select(Poll)
        .where(Poll.session_id == session.id, Poll.status.in_(shown))
        .order_by(Poll.created_at.desc())
        .limit(POLLS_ON_JOIN)
    ):
        counts = await poll_counts(db, poll=poll) if staff or poll.status == "closed" else None
        polls.append(poll_view(poll, counts))
    result = JoinResult(
        seq=room.last_seq,
        resumed=False,
        you=you,
        room=room_state(room),
        watching=watching,
        messages=list(reversed(messages)),
        questions=questions,
        my_questions=list(reversed(my_questions)),
        voted=await _voted(db, you.person_id, [q.id for q in questions]),
        polls=list(reversed(within(polls, JOIN_BUDGET["polls"]))),
        more=more,
    )
    if staff:
        reveal = session.chair_sees_asker_names
        rows = list(
            await db.scalars(
                _waiting(Question, session.id, QuestionStatus.pending).limit(QUEUE_ON_JOIN + 1)
            )
        )
        result.queue = within(
            [question_view(q, reveal=reveal) for q in rows[:QUEUE_ON_JOIN]], JOIN_BUDGET["queue"]
        )
        if len(rows) > len(result.queue) and result.queue:
            result.more["queue"] = position_cursor(result.queue[-1].at, result.queue[-1].id)
        rows = list(
            await db.scalars(
                _waiting(Message, session.id, MessageStatus.held).limit(QUEUE_ON_JOIN + 1)
            )
        )
        result.held = within([message_view(m) for m in rows[:QUEUE_ON_JOIN]], JOIN_BUDGET["held"])
        if len(rows) > len(result.held) and result.held:
            result.more["held"] = position_cursor(result.held[-1].at, result.held[-1].id)
    return result


@dataclass(frozen=True)
class HistoryPage:
    items: list[MessageView] | list[QuestionView]
    cursor: str | None
    voted: list[str]


async def room_history(
    db: AsyncSession,
    *,
    session_id: str,
    part: str,
    cursor: str,
    person_id: str,
    staff: bool,
    reveal: bool,
) -> HistoryPage:
    """One page of a part of the room older than (or past) `cursor`: see `RoomHistory`."""
    if part in ("queue", "held") and not staff:
        raise Forbidden("auth.forbidden", "Only moderators see this.")
    if part == "questions":
        offset = _read_offset(cursor)
        rows = list(await db.scalars(_approved(session_id).offset(offset).limit(HISTORY_PAGE + 1)))
        questions = within([question_view(q) for q in rows[:HISTORY_PAGE]], HISTORY_BUDGET)
        more = len(rows) > len(questions) and bool(questions)
        voted = await _voted(db, person_id, [q.id for q in questions])
        return HistoryPage(questions, str(offset + len(questions)) if more else None, voted)
    at, item_id = read_position(cursor)
    if part == "messages":
        query = _visible_messages(session_id).where(
            or_(Message.created_at < at, and_(Message.created_at == at, Message.id < item_id))
        )
        rows = list(await db.scalars(query.limit(HISTORY_PAGE + 1)))
        messages = within([message_view(m) for m in rows[:HISTORY_PAGE]], HISTORY_BUDGET)
        more = len(rows) > len(messages) and bool(messages)
        next_cursor = position_cursor(messages[-1].at, messages[-1].id) if more else None
        return HistoryPage(list(reversed(messages)), next_cursor, [])
    model: type[Question] | type[Message] = Question if part == "queue" else Message
    status = QuestionStatus.pending if part == "queue" else MessageStatus.held
    query = _waiting(model, session_id, status).where(
        or_(model.created_at > at, and_(model.created_at == at, model.id > item_id))
    )
    rows = list(await db.scalars(query.limit(HISTORY_PAGE + 1)))
    views: list[Any] = [
        question_view(row, reveal=reveal) if isinstance(row, Question) else message_view(row)
        for row in rows[:HISTORY_PAGE]
    ]
    kept = within(views, HISTORY_BUDGET)
    more = len(rows) > len(kept) and bool(kept)
    return HistoryPage(kept, position_cursor(kept[-1].at, kept[-1].id) if more else None, [])


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


# Refusals of one action by one person at one target within this window are one entry.
AUDIT_FOLD_WINDOW = timedelta(minutes=10)
AUDIT_OUTCOMES = ("done", "forbidden")


async def record_audit(
    db: AsyncSession,
    *,
    event_id: str,
    session_id: str,
    actor_id: str,
    actor_role: str,
    action: str,
    target_id: str | None,
    detail: str | None,
    outcome: str,
    rows: BatchRows | None = None,
) -> None:
    """Write one moderation action to the audit log; a refusal repeating one in the fold window
    counts on that entry instead, so a flood of them cannot push what was done out of view.
    With `rows` (a room's batch), a new entry is written with the batch's rows."""
    now = utcnow()
    if outcome == "forbidden":
        folded = await db.scalar(
            select(AuditEntry.id)
            .where(
                AuditEntry.session_id == session_id,
                AuditEntry.actor_id == actor_id,
                AuditEntry.action == action,
                AuditEntry.created_at >= now - AUDIT_FOLD_WINDOW,
                AuditEntry.outcome == outcome,
                AuditEntry.target_id.is_(None)
                if target_id is None
                else AuditEntry.target_id == target_id,
            )
            .order_by(AuditEntry.created_at.desc())
            .limit(1)
        )
        if folded is not None:
            # Counted in SQL: another server process may be counting on the same entry.
            await db.execute(
                update(AuditEntry)
                .where(AuditEntry.id == folded)
                .values(count=AuditEntry.count + 1, last_at=now)
            )
            return
    values = {
        "id": new_id(),
        "event_id": event_id,
        "session_id": session_id,
        "actor_id": actor_id,
        "actor_role": actor_role,
        "action": action,
        "target_id": target_id,
        "detail": detail,
        "outcome": outcome,
        "count": 1,
        "created_at": now,
        "last_at": now,
    }
    if rows is not None:
        rows.add(AuditEntry, values)
    else:
        db.add(AuditEntry(**values))


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    # Where the next page starts, or None when this is the last one.
    next_cursor: str | None


async def audit_log(
    db: AsyncSession,
    *,
    event: Event,
    outcome: str | None = None,
    action: str | None = None,
    actor_id: str | None = None,
    session_id: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> AuditPage:
    """One page of the event's moderation actions, newest first, filtered.

    Pages are keyed by (created_at, id) of the last entry shown, so entries written meanwhile
    (all newer) neither shift nor repeat what later pages hold."""
    if outcome is not None and outcome not in AUDIT_OUTCOMES:
        raise Invalid("request.invalid", "The outcome is done or forbidden.", field="outcome")
    if action is not None and action not in ACTIONS:
        raise Invalid("request.invalid", "There is no such action.", field="action")
    query = select(AuditEntry).where(AuditEntry.event_id == event.id)
    if outcome is not None:
        query = query.where(AuditEntry.outcome == outcome)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    if session_id is not None:
        query = query.where(AuditEntry.session_id == session_id)
    if cursor is not None:
        created_at, entry_id = read_position(cursor)
        query = query.where(
            or_(
                AuditEntry.created_at < created_at,
                and_(AuditEntry.created_at == created_at, AuditEntry.id < entry_id),
            )
        )
    rows = list(
        await db.scalars(
            query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    entries = rows[:limit]
    last = entries[-1] if more else None
    return AuditPage(entries, position_cursor(last.created_at, last.id) if last else None)


KEYS_KEPT = timedelta(days=1)


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
    # Idempotency keys are for resends after a reconnect: a day is plenty.
    result = await db.execute(delete(ActionKey).where(ActionKey.created_at < now - KEYS_KEPT))
    removed += result.rowcount  # type: ignore[attr-defined]
    await db.commit()
    return removed
