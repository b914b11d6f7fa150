"""HTTP shapes of the live gateway (the live protocol itself is in `chat.protocol`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    session_id: str
    actor_id: str
    actor_role: str
    action: str
    target_id: str | None
    detail: str | None
    outcome: str
    # Refusals repeated within a few minutes are one entry: how many, the first and the latest.
    count: int
    created_at: datetime
    last_at: datetime


class AttendancePoint(BaseModel):
    minute: datetime
    watching: int


class SessionAttendance(BaseModel):
    """People watching a session, minute by minute (all server processes together)."""

    session_id: str
    points: list[AttendancePoint]
