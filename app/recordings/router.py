"""HTTP routes for recordings: the organiser's list, and downloading or replaying one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.deps import AppSettings, DbSession, MaybePrincipal
from app.errors import NotFound
from app.event.service import get_visible_event
from app.recordings import service
from app.recordings.models import Recording
from app.recordings.schemas import RecordingRead

router = APIRouter(tags=["recordings"])


def _read(recording: Recording) -> RecordingRead:
    return RecordingRead.model_validate(recording).model_copy(
        update={"url": f"/api/recordings/{recording.id}/file"}
    )


@router.get("/api/events/{event_id}/recordings", response_model=list[RecordingRead])
async def list_recordings(event_id: str, db: DbSession, principal: MaybePrincipal):
    """Every recording of the event, for its organiser, and for its people if replays are on."""
    event = await get_visible_event(db, event_id=event_id, principal=principal)
    service.check_replay_allowed(principal, event)
    return [_read(r) for r in await service.list_recordings(db, event=event)]


@router.get(
    "/api/recordings/{recording_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"video/x-matroska": {}}, "description": "Matroska file"}},
)
async def download_recording(
    recording_id: str, db: DbSession, principal: MaybePrincipal, settings: AppSettings
) -> FileResponse:
    recording, event = await service.get_replayable(
        db, recording_id=recording_id, principal=principal
    )
    path = settings.recordings_dir / recording.file_name
    if not path.is_file():
        raise NotFound("recording.missing", "This recording's file is no longer on the server.")
    return FileResponse(
        path,
        media_type="video/x-matroska" if path.suffix == ".mkv" else "video/webm",
        filename=f"{event.slug}-{recording.started_at:%Y%m%d-%H%M}{path.suffix}",
    )
