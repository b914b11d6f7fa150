"""Recordings: store what the media server finished, list them, and decide who may replay."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import av
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agenda.models import Session
from app.auth.service import Principal
from app.errors import Forbidden, NotFound
from app.event.models import Event
from app.event.service import owns
from app.recordings.models import Recording


def probe_duration(path: Path) -> float:
    """The container's duration in seconds, read by PyAV without decoding."""
    with av.open(str(path)) as container:
        if container.duration is not None:
            return container.duration / av.time_base
        return max(
            (
                float(s.duration * s.time_base)
                for s in container.streams
                if s.duration and s.time_base
            ),
            default=0.0,
        )


async def store_recording(
    db: AsyncSession, *, session_id: str, path: Path, started_at: datetime, ended_at: datetime
) -> Recording:
    recording = Recording(
        session_id=session_id,
        file_name=path.name,
        started_at=started_at,
        ended_at=ended_at,
        duration_seconds=probe_duration(path),
        size_bytes=path.stat().st_size,
    )
    db.add(recording)
    await db.commit()
    return recording


def recording_store(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> Callable[[str, Path, datetime, datetime], Coroutine[Any, Any, None]]:
    """What the media server calls when it has finished a recording file."""

    async def store(session_id: str, path: Path, started_at: datetime, ended_at: datetime) -> None:
        async with sessionmaker() as db:
            await store_recording(
                db, session_id=session_id, path=path, started_at=started_at, ended_at=ended_at
            )

    return store


async def list_recordings(db: AsyncSession, *, event: Event) -> list[Recording]:
    rows = await db.scalars(
        select(Recording)
        .join(Session, Session.id == Recording.session_id)
        .where(Session.event_id == event.id)
        .order_by(Recording.started_at)
    )
    return list(rows)


def check_replay_allowed(principal: Principal | None, event: Event) -> None:
    """The organiser may always watch recordings; the event's own people when replays are on."""
    if owns(principal, event):
        return
    participant = principal.participant if principal else None
    if participant is None or participant.event_id != event.id:
        raise Forbidden("auth.forbidden", "Register for this event to watch its recordings.")
    if not event.replays_enabled:
        raise Forbidden("recording.replays_disabled", "This event does not offer replays.")


async def get_replayable(
    db: AsyncSession, *, recording_id: str, principal: Principal | None
) -> tuple[Recording, Event]:
    recording = await db.get(Recording, recording_id)
    if recording is None:
        raise NotFound("recording.not_found", "There is no such recording.")
    session = await db.get(Session, recording.session_id)
    assert session is not None
    event = await db.get(Event, session.event_id)
    assert event is not None
    check_replay_allowed(principal, event)
    return recording, event
