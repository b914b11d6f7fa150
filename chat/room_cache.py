"""What every live action re-reads, kept per room in this process: the session's and the event's
settings, the room's own (locked, slow mode, the pinned question) and its sanctions (who is
removed, who is muted until when).

A room action used to load the room, the session, the event and the person's removal (and a chat
post their mute) from the database before doing anything: five of a chat post's ten statements.
Now they are read once per room and kept until they change. Invalidation is explicit:

* a moderator's mute, unmute or removal (`Context.sanctions_changed`), or a change to the room's
  lock, slow mode or pinned question (`Context.room_changed`), forgets the room in this process as
  soon as it is committed, and in every other process through the bus;
* a session or event changed or deleted over HTTP (`Gateway.settings_changed`, which the API
  calls through `app.deps.LiveAccess`) forgets that session's room, or every room of the event,
  in every process;
* when the process's Redis link is lost (an invalidation may have been missed), everything.

A forgetting that lands while a load is in flight wins: the load's result is not kept (each room
has a generation, counted up by every forgetting). As a backstop against changes made behind
Dais's back (a database edited by hand, a `dais` command run beside the server), nothing is kept
longer than `KEEP_SECONDS`. A mute's end needs no invalidation: it is compared with the clock.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agenda.models import Session
from app.errors import NotFound
from app.event.models import Event
from chat.bus import Envelope
from chat.models import Room, Sanction
from chat.roles import ALL

KEEP_SECONDS = 30.0

# The bus envelope that tells every process to forget a room (`room` set) or an event's rooms.
FORGET = "forget"


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """What live handlers read of a session."""

    id: str
    event_id: str
    moderation_required: bool
    anonymous_questions_allowed: bool
    chair_sees_asker_names: bool


@dataclass(frozen=True, slots=True)
class EventSettings:
    """What live handlers read of the session's event."""

    id: str
    word_filter: tuple[str, ...]
    attendees_see_each_other: bool


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """The room's own settings, as actions read them; one that changes them loads the row
    (`Context.room_row`)."""

    locked: bool
    slow_mode_seconds: int
    pinned_question_id: str | None


@dataclass(frozen=True, slots=True)
class Sanctions:
    """The room's removals and mutes (a mute with no end lasts until it is lifted)."""

    removed: frozenset[str]
    mutes: Mapping[str, datetime | None]

    def is_removed(self, person_id: str) -> bool:
        return person_id in self.removed

    def is_muted(self, person_id: str, now: datetime) -> bool:
        if person_id not in self.mutes:
            return False
        until = self.mutes[person_id]
        return until is None or until > now


@dataclass(frozen=True, slots=True)
class RoomFacts:
    session: SessionSettings
    event: EventSettings
    room: RoomSettings
    sanctions: Sanctions
    loaded_at: float


def forget_room(session_id: str) -> Envelope:
    """The envelope that has every process forget one room's facts."""
    return Envelope(FORGET, session_id, ALL, None, "")


def forget_event(event_id: str) -> Envelope:
    """The envelope that has every process forget the facts of every room of one event."""
    return Envelope(FORGET, "", ALL, None, event_id)


class RoomCache:
    """One per process, built with the gateway (see the module's docstring)."""

    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._facts: dict[str, RoomFacts] = {}
        self._generations: dict[str, int] = {}
        self._epoch = 0  # counted up when everything is forgotten
        self.loads = 0  # how many times facts were read from the database (for tests)

    async def facts(self, db: AsyncSession, session_id: str) -> RoomFacts:
        """The room's facts, read with `db` when not kept (or kept too long). NotFound if the
        session no longer exists."""
        kept = self._facts.get(session_id)
        if kept is not None and time.monotonic() - kept.loaded_at < self.keep_seconds:
            return kept
        generation = (self._epoch, self._generations.get(session_id, 0))
        facts = await _load(db, session_id)
        self.loads += 1
        if generation == (self._epoch, self._generations.get(session_id, 0)):
            self._facts[session_id] = facts
        return facts

    def forget(self, envelope: Envelope) -> None:
        """Act on a `forget` envelope (from this process or another)."""
        if envelope.room:
            self.forget_room(envelope.room)
        else:
            self.forget_event(envelope.body)

    def forget_room(self, session_id: str) -> None:
        self._facts.pop(session_id, None)
        self._generations[session_id] = self._generations.get(session_id, 0) + 1

    def forget_event(self, event_id: str) -> None:
        for session_id in [s for s, f in self._facts.items() if f.event.id == event_id]:
            self.forget_room(session_id)
        # A load of one of its rooms may be in flight, its event not yet known: drop that too.
        self._epoch += 1

    def forget_all(self) -> None:
        self._facts.clear()
        self._epoch += 1


async def _load(db: AsyncSession, session_id: str) -> RoomFacts:
    row = (
        await db.execute(
            select(
                Session.id,
                Session.event_id,
                Session.moderation_required,
                Session.anonymous_questions_allowed,
                Session.chair_sees_asker_names,
                Event.word_filter,
                Event.attendees_see_each_other,
            )
            .join(Event, Event.id == Session.event_id)
            .where(Session.id == session_id)
        )
    ).one_or_none()
    room = (
        await db.execute(
            select(Room.locked, Room.slow_mode_seconds, Room.pinned_question_id).where(
                Room.session_id == session_id
            )
        )
    ).one_or_none()
    if row is None or room is None:  # the room is made as the first socket joins
        raise NotFound("session.not_found", "This session no longer exists.")
    rows = await db.execute(
        select(Sanction.person_id, Sanction.kind, Sanction.until).where(
            Sanction.session_id == session_id
        )
    )
    removed: set[str] = set()
    mutes: dict[str, datetime | None] = {}
    for person_id, kind, until in rows:
        if kind == "removal":
            removed.add(person_id)
        elif kind == "mute":
            mutes[person_id] = until
    return RoomFacts(
        session=SessionSettings(
            id=row.id,
            event_id=row.event_id,
            moderation_required=row.moderation_required,
            anonymous_questions_allowed=row.anonymous_questions_allowed,
            chair_sees_asker_names=row.chair_sees_asker_names,
        ),
        event=EventSettings(
            id=row.event_id,
            word_filter=tuple(row.word_filter or ()),
            attendees_see_each_other=row.attendees_see_each_other,
        ),
        room=RoomSettings(
            locked=room.locked,
            slow_mode_seconds=room.slow_mode_seconds,
            pinned_question_id=room.pinned_question_id,
        ),
        sanctions=Sanctions(frozenset(removed), MappingProxyType(mutes)),
        loaded_at=time.monotonic(),
    )
