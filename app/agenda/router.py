"""HTTP routes for the agenda's sessions."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.agenda import service
from app.agenda.schemas import SessionCreate, SessionPublic, SessionUpdate
from app.deps import CurrentOrganiser, DbSession, Live, MaybePrincipal
from app.event.service import get_owned_event, get_visible_event

router = APIRouter(tags=["agenda"])


@router.post(
    "/api/events/{event_id}/sessions",
    response_model=SessionPublic,
    status_code=status.HTTP_201_CREATED,
)
async def create_session(
    event_id: str, body: SessionCreate, db: DbSession, organiser: CurrentOrganiser
):
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    return await service.create_session(db, event=event, data=body)


@router.get("/api/sessions/{session_id}", response_model=SessionPublic)
async def read_session(session_id: str, db: DbSession, principal: MaybePrincipal) -> SessionPublic:
    session = await service.get_session(db, session_id=session_id)
    event = await get_visible_event(db, event_id=session.event_id, principal=principal)
    return next(s for s in await service.agenda(db, event=event) if s.id == session.id)


@router.patch("/api/sessions/{session_id}", response_model=SessionPublic)
async def update_session(
    session_id: str, body: SessionUpdate, db: DbSession, organiser: CurrentOrganiser, live: Live
):
    session = await service.get_session(db, session_id=session_id)
    event = await get_owned_event(db, event_id=session.event_id, organiser=organiser)
    updated = await service.update_session(db, event=event, session=session, data=body)
    await live.settings_changed(session_id=session.id)
    return updated


@router.delete("/api/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(
    session_id: str, db: DbSession, organiser: CurrentOrganiser, live: Live
) -> Response:
    session = await service.get_session(db, session_id=session_id)
    await get_owned_event(db, event_id=session.event_id, organiser=organiser)
    await service.delete_session(db, session=session)
    await live.settings_changed(session_id=session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
