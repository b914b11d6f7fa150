"""People: organisers, attendees registering, invited presenters and their roles, revocation."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.models import Session
from app.auth.service import hash_password, revoke_participant_tokens
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.event.models import Event
from app.invites.models import Invite
from app.people.models import Organiser, Participant, ParticipantKind, Role, SessionRole
from app.people.names import NameRefused, normalise_name, passes_for
from app.people.schemas import InvitedPerson, SessionRoleRead


def _checked_name(value: str, *, field: str, max_length: int = 80) -> str:
    """The name as stored, for callers that did not come through a schema (the CLI, demo data)."""
    try:
        return normalise_name(value, max_length=max_length)
    except NameRefused as refused:
        raise Invalid("request.invalid", refused.message, field=field) from None


async def create_organiser(db: AsyncSession, *, email: str, name: str, password: str) -> Organiser:
    name = _checked_name(name, field="name", max_length=120)
    if len(password) < 10:
        raise Invalid("organiser.weak_password", "Use at least 10 characters.", field="password")
    email = email.lower()
    if await db.scalar(select(Organiser.id).where(Organiser.email == email)):
        raise Conflict("organiser.exists", "An organiser with that email exists.", field="email")
    organiser = Organiser(email=email, name=name, password_hash=hash_password(password))
    db.add(organiser)
    await db.commit()
    return organiser


async def _presenter_and_staff_names(db: AsyncSession, *, event: Event) -> list[str]:
    """Names an attendee of `event` may not pass for: its chairs, speakers and moderators (not
    revoked: a revoked person is no longer shown as one) and its organiser."""
    names = list(
        await db.scalars(
            select(Participant.display_name).where(
                Participant.event_id == event.id,
                Participant.kind == ParticipantKind.invited.value,
                Participant.revoked_at.is_(None),
            )
        )
    )
    organiser = await db.scalar(select(Organiser.name).where(Organiser.id == event.organiser_id))
    return names if organiser is None else [*names, organiser]


async def register_attendee(
    db: AsyncSession, *, event: Event, display_name: str, email: str | None
) -> Participant:
    """Register an attendee, unless their name would pass for a presenter's or the organiser's.

    Attendees may share a name with each other: common names are common, and refusing one would
    tell anyone who tries a name whether that person registered for this event.
    """
    display_name = _checked_name(display_name, field="display_name")
    if passes_for(display_name, *await _presenter_and_staff_names(db, event=event)):
        raise Conflict(
            "person.name_taken",
            "That name belongs to a presenter or organiser of this event. Please choose another.",
            field="display_name",
        )
    attendee = Participant(
        event_id=event.id,
        kind=ParticipantKind.attendee.value,
        display_name=display_name,
        email=email,
    )
    db.add(attendee)
    await db.commit()
    return attendee


async def get_participant(db: AsyncSession, *, event: Event, participant_id: str) -> Participant:
    person = await db.get(Participant, participant_id)
    if person is None or person.event_id != event.id:
        raise NotFound("person.not_found", "There is no such person at this event.")
    return person


async def add_presenter(
    db: AsyncSession,
    *,
    event: Event,
    session: Session,
    role: Role,
    display_name: str | None = None,
    affiliation: str | None = None,
    email: str | None = None,
    participant_id: str | None = None,
) -> Participant:
    """Give a person (existing, or new by name) a role in a session; commits nothing.

    A presenter may be named like an attendee who registered earlier: the organiser chose them.
    """
    if participant_id is not None:
        person = await get_participant(db, event=event, participant_id=participant_id)
        if person.revoked_at is not None:
            raise Conflict("person.revoked", "This person has been revoked.")
    elif display_name:
        person = Participant(
            event_id=event.id,
            kind=ParticipantKind.invited.value,
            display_name=_checked_name(display_name, field="display_name"),
            affiliation=affiliation,
            email=email,
        )
        db.add(person)
        await db.flush()
    else:
        raise Invalid("request.invalid", "Name the person to invite.", field="display_name")
    existing = await db.scalar(
        select(SessionRole).where(
            SessionRole.session_id == session.id, SessionRole.participant_id == person.id
        )
    )
    if existing is None:
        db.add(SessionRole(session_id=session.id, participant_id=person.id, role=role.value))
    else:
        existing.role = role.value
    if role == Role.chair:
        # One chair per session: an earlier chair steps down to moderator.
        await db.execute(
            update(SessionRole)
            .where(
                SessionRole.session_id == session.id,
                SessionRole.role == Role.chair.value,
                SessionRole.participant_id != person.id,
            )
            .values(role=Role.moderator.value)
        )
    return person


async def revoke_participant(db: AsyncSession, *, event: Event, participant_id: str) -> Participant:
    """Revoke a person: their sign-ins and unused invites stop working at once."""
    person = await get_participant(db, event=event, participant_id=participant_id)
    if person.revoked_at is None:
        now = utcnow()
        person.revoked_at = now
        await revoke_participant_tokens(db, participant_id=person.id, at=now)
        await db.execute(
            update(Invite)
            .where(Invite.participant_id == person.id, Invite.used_at.is_(None))
            .values(revoked_at=now)
        )
        await db.commit()
    return person


async def invited_people(db: AsyncSession, *, event: Event) -> list[InvitedPerson]:
    people = await db.scalars(
        select(Participant)
        .where(Participant.event_id == event.id, Participant.kind == ParticipantKind.invited.value)
        .order_by(Participant.display_name)
    )
    roles: dict[str, list[SessionRoleRead]] = {}
    for role in await db.scalars(
        select(SessionRole)
        .join(Participant, Participant.id == SessionRole.participant_id)
        .where(Participant.event_id == event.id)
    ):
        roles.setdefault(role.participant_id, []).append(
            SessionRoleRead(session_id=role.session_id, role=Role(role.role))
        )
    return [
        InvitedPerson.model_validate(p).model_copy(update={"roles": roles.get(p.id, [])})
        for p in people
    ]


async def purge_attendee_emails(db: AsyncSession, *, now: datetime) -> int:
    """Forget attendees' emails once their event's retention period has passed; returns how many.

    The clock is the one chat and Q&A are purged by (`retention_days` before `now`), started
    from the later of the registration and the end of the event's last day: an email is given
    so the organiser can reach the attendee about the event, so it is kept while the event is
    still to come, however early they registered.
    """
    with_emails = (
        select(Event.id, Event.retention_days, Event.ends_on, Event.timezone)
        .join(Participant, Participant.event_id == Event.id)
        .where(Participant.kind == ParticipantKind.attendee.value, Participant.email.is_not(None))
        .distinct()
    )
    cleared = 0
    for event_id, days, ends_on, timezone in (await db.execute(with_emails)).all():
        cutoff = now - timedelta(days=days)
        ended = datetime.combine(
            ends_on + timedelta(days=1), datetime.min.time(), ZoneInfo(timezone)
        )
        if ended > cutoff:
            continue
        result = await db.execute(
            update(Participant)
            .where(
                Participant.event_id == event_id,
                Participant.kind == ParticipantKind.attendee.value,
                Participant.email.is_not(None),
                Participant.created_at < cutoff,
            )
            .values(email=None)
        )
        cleared += result.rowcount  # type: ignore[attr-defined]
    await db.commit()
    return cleared
