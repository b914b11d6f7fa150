"""Routes of the live gateway: the session's websocket and the organiser's audit log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, WebSocket

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


_ID = r"^[0-9A-Za-z]{1,32}$"
_NEXT_PAGE = {
    "Link": {
        "description": 'The next page, when there is one: `<…/audit?…&cursor=…>; rel="next"`',
        "schema": {"type": "string"},
    }
}


@router.get(
    "/api/events/{event_id}/audit",
    response_model=list[AuditEntryRead],
    responses={200: {"headers": _NEXT_PAGE}},
)
async def read_audit_log(
    event_id: str,
    request: Request,
    response: Response,
    db: DbSession,
    organiser: CurrentOrganiser,
    outcome: Annotated[Literal["done", "forbidden"] | None, Query()] = None,
    action: Annotated[str | None, Query(max_length=40, examples=["person.mute"])] = None,
    actor: Annotated[str | None, Query(pattern=_ID, description="a person's id")] = None,
    session: Annotated[str | None, Query(pattern=_ID, description="a session's id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
):
    """Moderation actions in the event's rooms, done and refused, newest first, a page at a
    time; the `Link` header (`rel="next"`) holds the next page's address, with its `cursor`.
    Refusals repeated within 10 minutes are one entry with their `count`."""
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    page = await audit_log(
        db,
        event=event,
        outcome=outcome,
        action=action,
        actor_id=actor,
        session_id=session,
        limit=limit,
        cursor=cursor,
    )
    if page.next_cursor is not None:
        after = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{after.path}?{after.query}>; rel="next"'
    return page.entries


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
