"""A session's stage: who publishes, who is live or muted, who views what, and what is recorded."""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .forwarder import PublishedTrack
from .peers import PublishingPeer, ViewingPeer, WantedTrack, label_kind
from .port import PresenterInfo, StageSnapshot, TrackInfo
from .recorder import SessionRecorder

# (session id, file, started, ended): told when a recording file is finished and closed.
RecordedCallback = Callable[[str, pathlib.Path, datetime, datetime], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


logger = logging.getLogger(__name__)

RECORDED_LABELS = ("camera", "mic", "screen")  # a speaker's tracks, in their file's stream order


@dataclass
class Publisher:
    """A speaker (or the chair) publishing on this stage; survives a reconnect within the grace."""

    person_id: str
    live: bool = False
    live_since: float = 0.0
    muted: dict[str, bool] = field(default_factory=lambda: {"audio": False, "video": False})
    peer: PublishingPeer | None = None
    labels: list[str] = field(default_factory=list)  # kept while reconnecting
    track_ids: dict[str, str] = field(default_factory=dict)
    stream_ids: dict[str, str] = field(default_factory=dict)
    grace: asyncio.TimerHandle | None = None

    def track(self, label: str) -> PublishedTrack | None:
        if self.peer is None:
            return None
        return self.peer.sending().get(label)

    def track_id(self, label: str) -> str:
        return self.track_ids.setdefault(label, uuid.uuid4().hex)

    def stream_id(self, label: str) -> str:
        # Camera and mic share a stream (so browsers keep them in sync); a screen share is its own.
        group = "screen" if label == "screen" else "camera"
        return self.stream_ids.setdefault(group, uuid.uuid4().hex)


class Stage:
    """Everything the media server knows about one session."""

    def __init__(
        self,
        *,
        session_id: str,
        recordings_dir: pathlib.Path,
        on_recorded: RecordedCallback | None = None,
    ) -> None:
        self.session_id = session_id
        self.recordings_dir = recordings_dir
        self.on_recorded = on_recorded
        self.publishers: dict[str, Publisher] = {}
        self.viewers: dict[str, ViewingPeer] = {}
        self.recorder: SessionRecorder | None = None
        self.recordings: list[pathlib.Path] = []

    def publisher(self, person_id: str) -> Publisher:
        publisher = self.publishers.get(person_id)
        if publisher is None:
            publisher = self.publishers[person_id] = Publisher(person_id=person_id)
        return publisher

    def attach(self, publisher: Publisher, peer: PublishingPeer) -> None:
        publisher.peer = peer
        publisher.labels = list(peer.sending())
        if publisher.grace is not None:
            publisher.grace.cancel()
            publisher.grace = None

    def wanted_for(self, viewer: ViewingPeer) -> dict[tuple[str, str], WantedTrack]:
        wanted: dict[tuple[str, str], WantedTrack] = {}
        for publisher in self.publishers.values():
            if publisher.person_id == viewer.person_id:
                continue
            if not (viewer.sees_green_room or publisher.live):
                continue
            for label in publisher.labels:
                if not viewer.sees_green_room and publisher.muted[label_kind(label)]:
                    continue
                if viewer.audio_only and label_kind(label) == "video":
                    continue
                wanted[(publisher.person_id, label)] = WantedTrack(
                    person_id=publisher.person_id,
                    label=label,
                    track_id=publisher.track_id(label),
                    stream_id=publisher.stream_id(label),
                    source=publisher.track(label),
                )
        return wanted

    # -- recording -----------------------------------------------------------------------------

    def update_recording(self) -> None:
        """Start a run when the stage goes live, end it when nobody is live, and record every live
        speaker's camera, mic and screen share (the first live speaker's first). When the current
        file cannot take a track that must now be recorded, it is finished and the next begins."""
        live = sorted((p for p in self.publishers.values() if p.live), key=lambda p: p.live_since)
        if not live:
            self.finish_recording()
            return
        wanted: dict[tuple[str, str], PublishedTrack | None] = {}
        muted: set[tuple[str, str]] = set()
        for publisher in live:
            for label in RECORDED_LABELS:
                if label in publisher.labels:
                    key = (publisher.person_id, label)
                    wanted[key] = publisher.track(label)
                    if publisher.muted[label_kind(label)]:
                        muted.add(key)
        if self.recorder is not None and not self.recorder.can_record(wanted, frozenset(muted)):
            self.finish_recording()
        if self.recorder is None:
            try:
                self.recorder = SessionRecorder(
                    session_id=self.session_id, directory=self.recordings_dir
                )
            except Exception:
                logger.exception("could not start recording session %s", self.session_id)
                return
        self.recorder.record(wanted, frozenset(muted))

    def finish_recording(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
            if recorder.path.exists():
                self.recordings.append(recorder.path)
                if self.on_recorded is not None:
                    self.on_recorded(self.session_id, recorder.path, recorder.started_at, utcnow())

    def snapshot(self) -> StageSnapshot:
        return StageSnapshot(
            session_id=self.session_id,
            presenters=tuple(
                PresenterInfo(
                    person_id=p.person_id,
                    live=p.live,
                    connected=p.peer is not None,
                    muted=tuple(p.muted.items()),
                    tracks=tuple(
                        TrackInfo(track_id=p.track_id(label), kind=label_kind(label), source=label)
                        for label in p.labels
                    ),
                )
                for p in self.publishers.values()
            ),
            live=tuple(p.person_id for p in self.publishers.values() if p.live),
            viewers=len(self.viewers),
            recording=self.recorder.path.name if self.recorder is not None else None,
        )


def now() -> float:
    return time.monotonic()
