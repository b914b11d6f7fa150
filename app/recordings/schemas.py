"""Recording shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class RecordingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    session_id: str
    started_at: datetime
    ended_at: datetime
    duration_seconds: float
    size_bytes: int
    url: str = ""
