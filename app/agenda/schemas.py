"""Session shapes, and the public view of who chairs and speaks."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.agenda.dates import SessionTime
from app.agenda.models import SessionKind
from app.patch import Patch


class SessionFields(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=20_000)
    kind: SessionKind = SessionKind.talk
    starts_at: SessionTime
    ends_at: SessionTime
    content_note: str | None = Field(default=None, max_length=2_000)
    moderation_required: bool = True
    anonymous_questions_allowed: bool = True
    chair_sees_asker_names: bool = False


class SessionCreate(SessionFields):
    pass


class SessionUpdate(Patch):
    nullable = frozenset({"content_note"})

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    kind: SessionKind | None = None
    starts_at: SessionTime | None = None
    ends_at: SessionTime | None = None
    content_note: str | None = Field(default=None, max_length=2_000)
    moderation_required: bool | None = None
    anonymous_questions_allowed: bool | None = None
    chair_sees_asker_names: bool | None = None


class Presenter(BaseModel):
    """A chair or speaker as the public agenda shows them."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    display_name: str
    affiliation: str | None = None


class SessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    event_id: str
    title: str
    description: str
    kind: SessionKind
    starts_at: datetime
    ends_at: datetime
    content_note: str | None
    moderation_required: bool
    anonymous_questions_allowed: bool
    chair_sees_asker_names: bool
    chair: Presenter | None = None
    speakers: list[Presenter] = []
