"""Attendance over time: how many people were in each room, sampled every minute and stored, so
the organiser can chart a session's audience afterwards. Counts only, never who."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.agenda.models import Session
from app.db import Base, UTCDateTime, utcnow
from app.event.models import Event
from chat.rooms import Rooms

log = logging.getLogger("dais.chat")


class AttendanceSample(Base):
    """People in one room on one server process during one minute; a room's audience is the sum
    over processes."""

    __tablename__ = "attendance_samples"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    watching: Mapped[int] = mapped_column(Integer)


class Sampler:
    """Writes this process's counts once a minute; a room that empties gets one zero sample."""

    def __init__(self, rooms: Rooms, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.rooms = rooms
        self.sessionmaker = sessionmaker
        self._last: dict[str, int] = {}

    async def sample(self, now: datetime | None = None) -> int:
        minute = (now or utcnow()).replace(second=0, microsecond=0)
        counts = {
            sid: n for sid, n in self.rooms.local_counts().items() if n or self._last.get(sid)
        }
        if not counts:
            return 0
        async with self.sessionmaker() as db:
            for session_id, watching in counts.items():
                await db.merge(
                    AttendanceSample(
                        session_id=session_id,
                        minute=minute,
                        process_id=self.rooms.process_id,
                        watching=watching,
                    )
                )
            await db.commit()
        self._last = counts
        return len(counts)

    async def run(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.sample()
            except Exception:
                log.exception("attendance sample failed")


async def attendance(db: AsyncSession, *, event: Event) -> dict[str, list[tuple[datetime, int]]]:
    """Per session of the event: (minute, people watching) in time order."""
    rows = await db.execute(
        select(
            AttendanceSample.session_id,
            AttendanceSample.minute,
            func.sum(AttendanceSample.watching),
        )
        .join(Session, Session.id == AttendanceSample.session_id)
        .where(Session.event_id == event.id)
        .group_by(AttendanceSample.session_id, AttendanceSample.minute)
        .order_by(AttendanceSample.minute)
    )
    series: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for session_id, minute, watching in rows:
        series[session_id].append((minute, int(watching)))
    return dict(series)
