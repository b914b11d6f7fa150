"""Routes of the live gateway: the session's websocket and the organiser's audit log."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.deps import CurrentOrganiser, DbSession
from app.event.service import get_owned_event
from chat.attendance import attendance
from chat.gateway import Gateway
from chat.schemas import AttendancePoint, AuditEntryRead, SessionAttendance
from chat.service import audit_log

router = APIRouter(tags=["live"])


@router.websocket("/api/sessions/{session_id}/live")
async def live(websocket: WebSocket, session_id: str) -> None:
    """The live socket of one session's room; the protocol is in docs/protocol.md."""
    gateway: Gateway = websocket.app.state.live
    await gateway.serve(websocket, session_id)


@router.get("/api/events/{event_id}/audit", response_model=list[AuditEntryRead])
async def read_audit_log(event_id: str, db: DbSession, organiser: CurrentOrganiser):
    """Moderation actions in the event's rooms, done and refused, newest first."""
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    return await audit_log(db, event=event)


@router.get("/api/events/{event_id}/attendance", response_model=list[SessionAttendance])
async def read_attendance(event_id: str, db: DbSession, organiser: CurrentOrganiser):
    """How many people watched each session over time, from counts stored every minute."""
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    series = await attendance(db, event=event)
    return [
        SessionAttendance(
            session_id=session_id,
            points=[AttendancePoint(minute=m, watching=w) for m, w in points],
        )
        for session_id, points in series.items()
    ]
