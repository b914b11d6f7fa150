"""Invite shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from app.people.models import Role
from app.people.names import DisplayName


class InviteCreate(BaseModel):
    """Invite a new person by name, or an existing one by `participant_id`."""

    role: Role
    display_name: DisplayName | None = None
    affiliation: str | None = Field(default=None, max_length=200)
    email: EmailStr | None = None
    participant_id: str | None = Field(default=None, max_length=32)
    valid_days: int | None = Field(default=None, ge=1, le=90)


class InviteRead(BaseModel):
    id: str
    participant_id: str
    display_name: str
    session_id: str | None
    role: Role
    url: str
    expires_at: datetime


class InviteAccept(BaseModel):
    token: str = Field(min_length=1, max_length=200)
