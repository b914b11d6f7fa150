"""Shapes for organisers, attendees' registration and the organiser's list of invited people."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.people.models import Role
from app.people.names import DisplayName


class Registration(BaseModel):
    """An attendee needs only a display name; an email is optional and never shown."""

    display_name: DisplayName
    email: EmailStr | None = None


class SignIn(BaseModel):
    email: EmailStr
    password: str = Field(min_length=1, max_length=1_000)


class OrganiserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str


class ParticipantSelf(BaseModel):
    """What a participant sees about themselves."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    event_id: str
    kind: str
    display_name: str
    email: str | None
    affiliation: str | None


class Me(BaseModel):
    organiser: OrganiserRead | None = None
    participant: ParticipantSelf | None = None
    roles: dict[str, Role] = {}


class SessionRoleRead(BaseModel):
    session_id: str
    role: Role


class InvitedPerson(BaseModel):
    """The organiser's view of a chair, speaker or moderator."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str
    affiliation: str | None
    email: str | None
    revoked_at: datetime | None
    roles: list[SessionRoleRead] = []
