"""People: organisers, attendees registering, invited presenters and their roles, revocation."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.models import Session
from app.auth.service import hash_password, revoke_participant_tokens
from app.db import utcnow
from app.errors import Conflict, Invalid, NotFound
from app.event.models import Event
from app.invites.models import Invite
from app.people.models import Organiser, Participant, ParticipantKind, Role, SessionRole
from app.people.schemas import InvitedPerson, SessionRoleRead


async def create_organiser(db: AsyncSession, *, email: str, name: str, password: str) -> Organiser:
    if len(password) < 10:
        raise Invalid("organiser.weak_password", "Use at least 10 characters.", field="password")
    email = email.lower()
    if await db.scalar(select(Organiser.id).where(Organiser.email == email)):
        raise Conflict("organiser.exists", "An organiser with that email exists.", field="email")
    organiser = Organiser(email=email, name=name, password_hash=hash_password(password))
    db.add(organiser)
    await db.commit()
    return organiser


async def register_attendee(
    db: AsyncSession, *, event: Event, display_name: str, email: str | None
) -> Participant:
    attendee = Participant(
        event_id=event.id,
        kind=ParticipantKind.attendee.value,
        display_name=display_name.strip(),
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
    """Give a person (existing, or new by name) a role in a session; commits nothing."""
    if participant_id is not None:
        person = await get_participant(db, event=event, participant_id=participant_id)
        if person.revoked_at is not None:
            raise Conflict("person.revoked", "This person has been revoked.")
    elif display_name:
        person = Participant(
            event_id=event.id,
            kind=ParticipantKind.invited.value,
            display_name=display_name.strip(),
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
