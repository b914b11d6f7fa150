"""Events: create, edit, look up, and count who registered."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.dates import LONGEST_EVENT
from app.agenda.models import Session
from app.agenda.service import check_within_event
from app.auth.service import Principal
from app.errors import Forbidden, Invalid, NotFound
from app.event.models import Event
from app.event.schemas import EventCreate, EventUpdate, Registrations
from app.people.models import Organiser, Participant, ParticipantKind


async def get_event(db: AsyncSession, *, event_id: str) -> Event:
    """An event by id or slug, or `event.not_found`."""
    event = await db.scalar(select(Event).where(or_(Event.id == event_id, Event.slug == event_id)))
    if event is None:
        raise NotFound("event.not_found", "There is no such event.")
    return event


async def get_visible_event(
    db: AsyncSession, *, event_id: str, principal: Principal | None
) -> Event:
    """A published event, or a draft its own organiser is looking at."""
    event = await get_event(db, event_id=event_id)
    if not event.published and not owns(principal, event):
        raise NotFound("event.not_found", "There is no such event.")
    return event


async def get_owned_event(db: AsyncSession, *, event_id: str, organiser: Organiser) -> Event:
    event = await get_event(db, event_id=event_id)
    if event.organiser_id != organiser.id:
        raise Forbidden("auth.forbidden", "Only this event's organiser may do this.")
    return event


def owns(principal: Principal | None, event: Event) -> bool:
    return bool(principal and principal.organiser and principal.organiser.id == event.organiser_id)


async def list_published(db: AsyncSession) -> list[Event]:
    rows = await db.scalars(select(Event).where(Event.published).order_by(Event.starts_on))
    return list(rows)


async def list_owned(db: AsyncSession, *, organiser: Organiser) -> list[Event]:
    rows = await db.scalars(
        select(Event).where(Event.organiser_id == organiser.id).order_by(Event.starts_on)
    )
    return list(rows)


def slugify(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:70].strip("-")
    return slug or "event"


async def _free_slug(db: AsyncSession, wanted: str) -> str:
    slug, n = wanted, 1
    while await db.scalar(select(Event.id).where(Event.slug == slug)) is not None:
        n += 1
        slug = f"{wanted}-{n}"
    return slug


def check_dates(starts_on: date, ends_on: date) -> None:
    """An event ends on or after its first day, and lasts at most `LONGEST_EVENT`."""
    if ends_on < starts_on:
        raise Invalid(
            "event.ends_before_start", "The event ends before it starts.", field="ends_on"
        )
    if ends_on - starts_on >= LONGEST_EVENT:
        raise Invalid(
            "event.too_long",
            f"An event lasts at most {LONGEST_EVENT.days} days.",
            field="ends_on",
        )


async def create_event(db: AsyncSession, *, organiser: Organiser, data: EventCreate) -> Event:
    """A new event, unpublished unless asked; its slug is made unique."""
    check_dates(data.starts_on, data.ends_on)
    if data.slug and await db.scalar(select(Event.id).where(Event.slug == data.slug)):
        raise Invalid("event.slug_taken", "Another event already uses that address.", field="slug")
    values = data.model_dump(exclude={"slug"})
    event = Event(
        organiser_id=organiser.id,
        slug=data.slug or await _free_slug(db, slugify(data.title)),
        **values,
    )
    db.add(event)
    await db.commit()
    return event


async def update_event(db: AsyncSession, *, event: Event, data: EventUpdate) -> Event:
    """Apply the given fields; dates may not shrink past a scheduled session."""
    changes = data.changes()
    starts_on = changes.get("starts_on", event.starts_on)
    ends_on = changes.get("ends_on", event.ends_on)
    check_dates(starts_on, ends_on)
    moved = [name for name in ("starts_on", "ends_on", "timezone") if name in changes]
    for name, value in changes.items():
        setattr(event, name, value)
    if moved:
        # A refusal names the side a session falls off, or the time zone when only that moved.
        early, late = (
            ("timezone", "timezone") if moved == ["timezone"] else ("starts_on", "ends_on")
        )
        for session in await db.scalars(select(Session).where(Session.event_id == event.id)):
            check_within_event(
                event, session.starts_at, session.ends_at, early_field=early, late_field=late
            )
    await db.commit()
    return event


async def registrations(db: AsyncSession, *, event: Event) -> Registrations:
    """How many attendees registered; their display names only if the event allows it."""
    attendees = (
        Participant.event_id == event.id,
        Participant.kind == ParticipantKind.attendee.value,
        Participant.revoked_at.is_(None),
    )
    count = await db.scalar(select(func.count()).select_from(Participant).where(*attendees)) or 0
    if not event.organiser_sees_attendee_names:
        return Registrations(count=count)
    names = await db.scalars(
        select(Participant.display_name).where(*attendees).order_by(Participant.created_at)
    )
    return Registrations(count=count, display_names=list(names))
