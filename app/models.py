"""Every table Dais stores, imported in one place for Alembic and the tests."""

from app.agenda.models import Session
from app.auth.models import AccessToken
from app.db import Base
from app.event.models import Event
from app.invites.models import Invite
from app.people.models import Organiser, Participant, SessionRole

__all__ = [
    "AccessToken",
    "Base",
    "Event",
    "Invite",
    "Organiser",
    "Participant",
    "Session",
    "SessionRole",
]
