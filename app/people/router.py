"""HTTP routes for the organiser's view of invited people, and revoking a person."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import CurrentOrganiser, DbSession, Live
from app.event.service import get_owned_event
from app.people import service
from app.people.schemas import InvitedPerson, ParticipantSelf

router = APIRouter(prefix="/api/events/{event_id}/people", tags=["people"])


@router.get("", response_model=list[InvitedPerson])
async def list_invited(event_id: str, db: DbSession, organiser: CurrentOrganiser):
    """Chairs, speakers and moderators with their roles (attendees are only counted)."""
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    return await service.invited_people(db, event=event)


@router.post("/{participant_id}/revoke", response_model=ParticipantSelf)
async def revoke(
    event_id: str, participant_id: str, db: DbSession, organiser: CurrentOrganiser, live: Live
):
    """Revoke a person: their sign-ins and unused invites stop working, and their open live
    sockets close."""
    event = await get_owned_event(db, event_id=event_id, organiser=organiser)
    person = await service.revoke_participant(db, event=event, participant_id=participant_id)
    await live.withdraw(person_id=person.id)
    return person
