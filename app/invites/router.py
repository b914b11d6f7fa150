"""Invites: the organiser makes links; the person opens one and is signed in with its role."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from app.agenda.service import get_session
from app.auth.router import set_session_cookie
from app.auth.service import issue_token
from app.deps import AppSettings, CurrentOrganiser, DbSession, Live
from app.errors import DomainError, NotFound
from app.event.models import Event
from app.event.service import get_owned_event
from app.invites import service
from app.invites.models import Invite
from app.invites.schemas import InviteAccept, InviteCreate, InviteRead
from app.pages import page
from app.people.models import Participant, Role
from app.people.schemas import ParticipantSelf
from app.people.service import add_presenter
from app.settings import Settings

router = APIRouter(tags=["invites"])


def _read(invite: Invite, person: Participant, settings: Settings) -> InviteRead:
    return InviteRead(
        id=invite.id,
        participant_id=person.id,
        display_name=person.display_name,
        session_id=invite.session_id,
        role=Role(invite.role),
        url=service.invite_url(settings.base_url, settings.signing_key, invite),
        expires_at=invite.expires_at,
    )


@router.post(
    "/api/sessions/{session_id}/invites",
    response_model=InviteRead,
    status_code=status.HTTP_201_CREATED,
)
async def create_invite(
    session_id: str,
    body: InviteCreate,
    db: DbSession,
    organiser: CurrentOrganiser,
    settings: AppSettings,
    live: Live,
) -> InviteRead:
    """Invite a chair, speaker or moderator to a session with a single-use, expiring link.
    Sockets in the session's room of anyone whose role changed (the person, a chair replaced)
    join again with their new role."""
    session = await get_session(db, session_id=session_id)
    event = await get_owned_event(db, event_id=session.event_id, organiser=organiser)
    person = await add_presenter(
        db,
        event=event,
        session=session,
        role=body.role,
        display_name=body.display_name,
        affiliation=body.affiliation,
        email=body.email,
        participant_id=body.participant_id,
    )
    invite = await service.create_invite(
        db,
        participant=person,
        session_id=session.id,
        role=body.role,
        days=body.valid_days or settings.invite_days,
    )
    await live.roles_changed(session_id=session.id)
    return _read(invite, person, settings)


@router.post("/api/invites/{invite_id}/revoke", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invite(invite_id: str, db: DbSession, organiser: CurrentOrganiser) -> Response:
    invite = await db.get(Invite, invite_id)
    if invite is None:
        raise NotFound("invite.not_found", "There is no such invite.")
    await get_owned_event(db, event_id=invite.event_id, organiser=organiser)
    await service.revoke_invite(db, invite=invite)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/invites/accept", response_model=ParticipantSelf)
async def accept_invite(
    body: InviteAccept, response: Response, db: DbSession, settings: AppSettings
):
    """Spend an invite token (the part of the link after /invite/) and sign in."""
    _, person = await service.accept_invite(db, key=settings.signing_key, token=body.token)
    token = await issue_token(db, days=settings.access_token_days, participant_id=person.id)
    set_session_cookie(response, token, settings)
    return person


def _not_usable(error: DomainError) -> HTMLResponse:
    return page("invite-not-usable", error.status, message=error.message)


@router.get("/invite/{token}", response_class=HTMLResponse, include_in_schema=False)
async def invite_page(token: str, db: DbSession, settings: AppSettings) -> HTMLResponse:
    """Shows who the invite is for; the link is spent only by pressing Continue, so a mail
    scanner that fetches links cannot use it up."""
    try:
        invite, person = await service.check_invite(db, key=settings.signing_key, token=token)
    except DomainError as error:
        return _not_usable(error)
    event = await db.get(Event, invite.event_id)
    assert event is not None
    return page(
        "invite", name=person.display_name, role=invite.role, event=event.title, token=token
    )


@router.post("/invite/{token}", include_in_schema=False)
async def invite_continue(token: str, db: DbSession, settings: AppSettings):
    try:
        invite, person = await service.accept_invite(db, key=settings.signing_key, token=token)
    except DomainError as error:
        return _not_usable(error)
    access = await issue_token(db, days=settings.access_token_days, participant_id=person.id)
    event = await db.get(Event, invite.event_id)
    assert event is not None
    target = f"/e/{event.slug}"
    if invite.session_id:
        target += f"/sessions/{invite.session_id}"
    redirect = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    set_session_cookie(redirect, access, settings)
    return redirect
