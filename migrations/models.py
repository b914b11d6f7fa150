"""Every table Dais stores, gathered in one place for Alembic and the tests.

A composition module outside the layers: `app` owns the conference's tables and `chat` the
room's, and neither imports the other's to list them (see docs/architecture.md)."""

from app.agenda.models import Session
from app.auth.models import AccessToken
from app.db import Base
from app.event.models import Event
from app.invites.models import Invite
from app.people.models import Organiser, Participant, SessionRole
from app.recordings.models import Recording
from chat.attendance import AttendanceSample
from chat.models import (
    AuditEntry,
    Message,
    Poll,
    PollVote,
    Question,
    QuestionVote,
    Room,
    RoomEvent,
    Sanction,
)

__all__ = [
    "AccessToken",
    "AttendanceSample",
    "AuditEntry",
    "Base",
    "Event",
    "Invite",
    "Message",
    "Organiser",
    "Participant",
    "Poll",
    "PollVote",
    "Question",
    "Recording",
    "QuestionVote",
    "Room",
    "RoomEvent",
    "Sanction",
    "Session",
    "SessionRole",
]
