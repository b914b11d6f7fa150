"""Event shapes: what an organiser sends, what anyone may read, what only the organiser reads."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from app.agenda.dates import EventDay, TimeZoneName
from app.agenda.schemas import SessionPublic
from app.patch import Patch


class EventSettings(BaseModel):
    organiser_sees_attendee_names: bool = False
    attendees_see_each_other: bool = False
    replays_enabled: bool = False
    retention_days: int = Field(default=30, ge=1, le=3650)
    word_filter: list[str] = Field(default_factory=list, max_length=500)


class EventCreate(EventSettings):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,78}[a-z0-9]$")
    starts_on: EventDay
    ends_on: EventDay
    timezone: TimeZoneName = "Europe/London"
    published: bool = False


class EventUpdate(Patch):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    starts_on: EventDay | None = None
    ends_on: EventDay | None = None
    timezone: TimeZoneName | None = None
    published: bool | None = None
    organiser_sees_attendee_names: bool | None = None
    attendees_see_each_other: bool | None = None
    replays_enabled: bool | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    word_filter: list[str] | None = Field(default=None, max_length=500)


class EventPublic(BaseModel):
    """What anyone may read about a published event."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    slug: str
    title: str
    description: str
    starts_on: date
    ends_on: date
    timezone: str
    published: bool
    replays_enabled: bool


class EventAdmin(EventPublic):
    """The organiser's view, with every setting."""

    organiser_sees_attendee_names: bool
    attendees_see_each_other: bool
    retention_days: int
    word_filter: list[str]
    created_at: datetime
    updated_at: datetime


class Agenda(EventPublic):
    sessions: list[SessionPublic]


class Registrations(BaseModel):
    count: int
    # Only when the event's settings let the organiser see attendees' names.
    display_names: list[str] | None = None
