"""The agenda: sessions of an event, who chairs and speaks in them, and their times."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.dates import event_instants
from app.agenda.models import Session
from app.agenda.schemas import Presenter, SessionCreate, SessionPublic, SessionUpdate
from app.errors import Invalid, NotFound
from app.event.models import Event
from app.people.models import Participant, Role, SessionRole


async def get_session(db: AsyncSession, *, session_id: str) -> Session:
    session = await db.get(Session, session_id)
    if session is None:
        raise NotFound("session.not_found", "There is no such session.")
    return session


def check_within_event(
    event: Event,
    starts_at: datetime,
    ends_at: datetime,
    *,
    early_field: str = "starts_at",
    late_field: str = "ends_at",
) -> None:
    """Sessions end after they start, and fall within the event's days in its time zone.

    A refusal names `early_field` when the session starts before the event's first day (or the
    event's dates will not convert), `late_field` when it ends after the event's last day.
    """
    if ends_at <= starts_at:
        raise Invalid(
            "session.ends_before_start", "The session ends before it starts.", field="ends_at"
        )
    first, after_last = event_instants(
        event.starts_on, event.ends_on, event.timezone, field=early_field
    )
    if starts_at < first or ends_at > after_last:
        raise Invalid(
            "session.outside_event",
            f"The session must fall within the event's dates ({event.starts_on} to "
            f"{event.ends_on}, {event.timezone}).",
            field=early_field if starts_at < first else late_field,
        )


async def create_session(db: AsyncSession, *, event: Event, data: SessionCreate) -> Session:
    check_within_event(event, data.starts_at, data.ends_at)
    session = Session(event_id=event.id, **data.model_dump())
    db.add(session)
    await db.commit()
    return session


async def update_session(
    db: AsyncSession, *, event: Event, session: Session, data: SessionUpdate
) -> Session:
    changes = data.changes()
    check_within_event(
        event,
        changes.get("starts_at", session.starts_at),
        changes.get("ends_at", session.ends_at),
    )
    for name, value in changes.items():
        setattr(session, name, value)
    await db.commit()
    return session


async def delete_session(db: AsyncSession, *, session: Session) -> None:
    await db.delete(session)
    await db.commit()


async def list_sessions(db: AsyncSession, *, event_id: str) -> list[Session]:
    rows = await db.scalars(
        select(Session)
        .where(Session.event_id == event_id)
        .order_by(Session.starts_at, Session.title)
    )
    return list(rows)


async def agenda(db: AsyncSession, *, event: Event) -> list[SessionPublic]:
    """Every session in time order, with its chair and speakers (moderators stay unlisted)."""
    sessions = await list_sessions(db, event_id=event.id)
    rows = await db.execute(
        select(SessionRole.session_id, SessionRole.role, Participant)
        .join(Participant, Participant.id == SessionRole.participant_id)
        .join(Session, Session.id == SessionRole.session_id)
        .where(Session.event_id == event.id, Participant.revoked_at.is_(None))
        .order_by(SessionRole.position, Participant.display_name)
    )
    chairs: dict[str, Presenter] = {}
    speakers: dict[str, list[Presenter]] = {}
    for session_id, role, person in rows:
        presenter = Presenter.model_validate(person)
        if role == Role.chair:
            chairs.setdefault(session_id, presenter)
        elif role == Role.speaker:
            speakers.setdefault(session_id, []).append(presenter)
    return [
        SessionPublic.model_validate(s).model_copy(
            update={"chair": chairs.get(s.id), "speakers": speakers.get(s.id, [])}
        )
        for s in sessions
    ]
