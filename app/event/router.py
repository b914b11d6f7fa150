"""HTTP routes for events: the public list and agenda, and the organiser's editing."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.agenda.calendar import agenda_ics
from app.agenda.service import agenda
from app.auth.router import set_session_cookie
from app.auth.service import issue_token
from app.deps import (
    AppSettings,
    AppThrottles,
    Client,
    CurrentOrganiser,
    DbSession,
    Live,
    MaybePrincipal,
)
from app.event import service
from app.event.schemas import (
    Agenda,
    EventAdmin,
    EventCreate,
    EventPublic,
    EventUpdate,
    Registrations,
)
from app.people.schemas import ParticipantSelf, Registration
from app.people.service import register_attendee
from app.throttle import REGISTRATIONS_PER_CLIENT

router = APIRouter(prefix="/api/events", tags=["events"])


@router.get("", response_model=list[EventPublic])
async def list_events(db: DbSession):
    """Published events, soonest first. No sign-in needed."""
    return await service.list_published(db)


@router.get("/mine", response_model=list[EventAdmin])
async def my_events(db: DbSession, organiser: CurrentOrganiser):
    """The signed-in organiser's events, drafts included."""
    return await service.list_owned(db, organiser=organiser)


@router.post("", response_model=EventAdmin, status_code=status.HTTP_201_CREATED)
async def create_event(body: EventCreate, db: DbSession, organiser: CurrentOrganiser):
    return await service.create_event(db, organiser=organiser, data=body)


@router.get("/{event_id}", response_model=EventPublic)
async def read_event(event_id: str, db: DbSession, principal: MaybePrincipal):
    return await service.get_visible_event(db, event_id=event_id, principal=principal)


@router.get("/{event_id}/settings", response_model=EventAdmin)
async def read_event_settings(event_id: str, db: DbSession, organiser: CurrentOrganiser):
    return await service.get_owned_event(db, event_id=event_id, organiser=organiser)


@router.patch("/{event_id}", response_model=EventAdmin)
async def update_event(
    event_id: str, body: EventUpdate, db: DbSession, organiser: CurrentOrganiser, live: Live
):
    event = await service.get_owned_event(db, event_id=event_id, organiser=organiser)
    updated = await service.update_event(db, event=event, data=body)
    await live.settings_changed(event_id=event.id)
    return updated


@router.get("/{event_id}/agenda", response_model=Agenda)
async def read_agenda(event_id: str, db: DbSession, principal: MaybePrincipal) -> Agenda:
    """The event with its sessions, chairs and speakers. No sign-in needed."""
    event = await service.get_visible_event(db, event_id=event_id, principal=principal)
    sessions = await agenda(db, event=event)
    return Agenda(**EventPublic.model_validate(event).model_dump(), sessions=sessions)


@router.get(
    "/{event_id}/agenda.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}, "description": "iCalendar file"}},
)
async def download_agenda(
    event_id: str, db: DbSession, principal: MaybePrincipal, settings: AppSettings
) -> Response:
    """The agenda as an iCalendar file to import into a calendar program."""
    event = await service.get_visible_event(db, event_id=event_id, principal=principal)
    body = agenda_ics(
        event,
        await agenda(db, event=event),
        event_url=f"{settings.base_url.rstrip('/')}/e/{event.slug}",
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{event.slug}.ics"'},
    )


@router.post(
    "/{event_id}/register", response_model=ParticipantSelf, status_code=status.HTTP_201_CREATED
)
async def register(
    event_id: str,
    body: Registration,
    response: Response,
    db: DbSession,
    settings: AppSettings,
    principal: MaybePrincipal,
    throttles: AppThrottles,
    client: Client,
):
    """Register as an attendee with a display name (email optional). Signs the browser in.
    One client registers a limited number of people an hour (429 with `Retry-After`)."""
    event = await service.get_visible_event(db, event_id=event_id, principal=principal)
    await throttles.spend(REGISTRATIONS_PER_CLIENT, client)
    attendee = await register_attendee(
        db, event=event, display_name=body.display_name, email=body.email
    )
    token = await issue_token(db, days=settings.access_token_days, participant_id=attendee.id)
    set_session_cookie(response, token, settings)
    return attendee


@router.get("/{event_id}/registrations", response_model=Registrations)
async def read_registrations(event_id: str, db: DbSession, organiser: CurrentOrganiser):
    """How many attendees registered (names only if the event's settings allow)."""
    event = await service.get_owned_event(db, event_id=event_id, organiser=organiser)
    return await service.registrations(db, event=event)
