"""Records a session's live stage to Matroska by muxing the forwarded VP8/Opus frames as they are.

Nothing is decoded or encoded: aiortc's jitter buffer (on the publisher's receiver) reassembles RTP
packets into encoded frames, and each frame becomes one `av.Packet` in a stream created with
`add_mux_stream` (no codec context at all).

What is recorded: every live speaker's camera (VP8), microphone (Opus) and screen share (VP8), each
its own stream, the first live speaker's first (so a player that plays one video and one audio
stream, as browsers do, plays the featured speaker). Muted tracks, and speakers taken off the
stage, leave gaps in their streams (a muted camera is still watched for its picture size, so
its stream exists when it is unmuted). Timestamps follow the wall clock from the start of the
file, so a speaker's reconnect shows as a gap.

A file's streams are fixed when its first packet is written (FFmpeg's Matroska muxer cannot add
one later: it refuses the packets and can abort the process on close). So one file is one *part*:
it waits up to `STREAMS_DEADLINE` for a keyframe of every camera it records (a video stream
needs the picture size and must start on a keyframe), then fixes its streams; when a track it has
no stream for must be recorded (another speaker goes live, a screen share starts, a camera whose
first keyframe came too late) the stage closes the part and starts the next. Audio streams are
made for every microphone, muted or not, so unmuting one never needs a new part.
"""

from __future__ import annotations

import datetime
import logging
import pathlib
import re
import time
from fractions import Fraction

import av

from . import aiortc_hooks as hooks
from .forwarder import PublishedTrack
from .payloads import vp8_frame_is_keyframe, vp8_frame_size

logger = logging.getLogger(__name__)

VIDEO_TIME_BASE = Fraction(1, 90000)
AUDIO_TIME_BASE = Fraction(1, 48000)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_session_name(session_id: str) -> str:
    return _UNSAFE.sub("_", session_id).lstrip(".")[:80] or "session"


def recording_pattern(session_id: str) -> re.Pattern[str]:
    return re.compile(re.escape(safe_session_name(session_id)) + r"-\d{8}T\d{6}Z(-\d+)?\.mkv")


RecordKey = tuple[str, str]  # (person id, label: "camera", "mic" or "screen")

STREAMS_DEADLINE = 2.0  # seconds a part waits for its cameras' first keyframes
MAX_PENDING = 1000  # frames kept meanwhile


def kind_of(key: RecordKey) -> str:
    return "audio" if key[1] == "mic" else "video"


def recordable(kind: str, source: PublishedTrack) -> bool:
    """Opus, and VP8 video (a codec not known yet counts as VP8 until its first packet)."""
    return kind == "audio" or (source.codec_name or "VP8").lower() == "vp8"


class _Feed:
    """One recorded track: where its frames come from, its stream, and its timeline mapping."""

    def __init__(self, key: RecordKey) -> None:
        self.key = key
        self.kind = kind_of(key)
        self.time_base = AUDIO_TIME_BASE if self.kind == "audio" else VIDEO_TIME_BASE
        self.clock_rate = self.time_base.denominator
        self.source: PublishedTrack | None = None
        self.muted = False  # watched (a camera's size), not written
        self.stream: av.stream.Stream | None = None
        self.size: tuple[int, int] | None = None  # video: from its first keyframe
        self.base_pts = 0
        self.base_ts: int | None = None
        self.last_pts = -1

    def switch(self, source: PublishedTrack | None) -> None:
        self.source = source
        self.base_ts = None

    def recordable(self, source: PublishedTrack) -> bool:
        return recordable(self.kind, source)

    def pts(self, timestamp: int, elapsed: float) -> int:
        if self.base_ts is None:
            self.base_ts = timestamp
            self.base_pts = max(self.last_pts + 1, int(elapsed * self.clock_rate))
        pts = self.base_pts + ((timestamp - self.base_ts) & 0xFFFFFFFF)
        if pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        return pts


class SessionRecorder:
    """One part of a recording run: a file of the stage from when it starts until it is closed."""

    def __init__(self, *, session_id: str, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.started_at = datetime.datetime.now(datetime.UTC)
        stamp = self.started_at.strftime("%Y%m%dT%H%M%SZ")
        base = f"{safe_session_name(session_id)}-{stamp}"
        path = directory / f"{base}.mkv"
        counter = 1
        while path.exists():
            path = directory / f"{base}-{counter}.mkv"
            counter += 1
        self.path = path
        self._started = time.monotonic()
        self._feeds: dict[RecordKey, _Feed] = {}  # in stream order: the featured speaker first
        self._by_source: dict[PublishedTrack, _Feed] = {}
        self._fixed = False  # streams made (the first packet is written with them)
        self._pending: list[tuple[_Feed, bytes, float, int, bool]] = []
        self.closed = False
        # Opened now so the file exists for the whole part, even before the first keyframe.
        self._container: av.container.OutputContainer | None = av.open(
            str(path), "w", format="matroska"
        )

    @property
    def streams(self) -> list[RecordKey]:
        """The tracks this part has a stream for, in order (empty until its streams are fixed)."""
        return [key for key, feed in self._feeds.items() if feed.stream is not None]

    def can_record(
        self,
        wanted: dict[RecordKey, PublishedTrack | None],
        muted: frozenset[RecordKey] = frozenset(),
    ) -> bool:
        """Whether this part has, or can still make, a stream for every track to record now."""
        if not self._fixed:
            return True
        for key, source in wanted.items():
            feed = self._feeds.get(key)
            if source is None or key in muted or (feed is not None and feed.stream is not None):
                continue
            if recordable(kind_of(key), source):
                return False
        return True

    def record(
        self,
        wanted: dict[RecordKey, PublishedTrack | None],
        muted: frozenset[RecordKey] = frozenset(),
    ) -> None:
        """Record these tracks from now on, in this order (None: not connected, reconnecting);
        `muted` ones are followed but not written."""
        if self.closed:
            return
        for key, source in wanted.items():
            feed = self._feeds.get(key)
            if feed is None:
                if self._fixed:
                    continue  # no stream for it in this part (can_record() allowed that)
                feed = self._feeds[key] = _Feed(key)
            self._attach(feed, source, key in muted)
        for key, feed in self._feeds.items():
            if key not in wanted:
                self._attach(feed, None, False)

    def _attach(self, feed: _Feed, source: PublishedTrack | None, muted: bool) -> None:
        if feed.source is source:
            if feed.muted != muted:
                feed.muted = muted
                feed.switch(source)  # resumes on the wall clock (video: on its next keyframe)
                if source is not None and feed.kind == "video" and not muted:
                    source.request_keyframe()
            return
        if feed.source is not None:
            feed.source.remove_frame_listener(self._on_frame)
            self._by_source.pop(feed.source, None)
        feed.switch(source)
        feed.muted = muted
        if source is not None:
            self._by_source[source] = feed
            source.add_frame_listener(self._on_frame)
            if feed.kind == "video":
                source.request_keyframe()

    def _on_frame(self, source: PublishedTrack, frame: hooks.JitterFrame) -> None:
        feed = self._by_source.get(source)
        if self.closed or feed is None or not feed.recordable(source):
            return
        elapsed = time.monotonic() - self._started
        keyframe = True
        if feed.kind == "video":
            if (source.codec_name or "").lower() != "vp8":
                return
            keyframe = vp8_frame_is_keyframe(frame.data)
            if feed.size is None:
                size = vp8_frame_size(frame.data) if keyframe else None
                if size is None:
                    return  # a video stream starts on a keyframe, which gives its size
                feed.size = size
        if feed.muted:
            return
        if self._fixed:
            self._write(feed, frame.data, elapsed, frame.timestamp, keyframe)
            return
        self._pending.append((feed, frame.data, elapsed, frame.timestamp, keyframe))
        del self._pending[:-MAX_PENDING]
        if elapsed >= STREAMS_DEADLINE or not any(
            f.kind == "video" and f.size is None and f.source is not None and f.recordable(f.source)
            for f in self._feeds.values()
        ):
            self._fix_streams()

    def _fix_streams(self) -> None:
        """Make the streams: every camera or screen that has shown a keyframe, every microphone."""
        assert self._container is not None
        self._fixed = True
        for feed in self._feeds.values():
            if feed.kind == "audio":
                feed.stream = self._container.add_mux_stream("opus", rate=48000)
            elif feed.size is not None:
                width, height = feed.size
                feed.stream = self._container.add_mux_stream("vp8", width=width, height=height)
        pending, self._pending = self._pending, []
        for item in pending:
            self._write(*item)

    def _write(
        self, feed: _Feed, data: bytes, elapsed: float, timestamp: int, keyframe: bool
    ) -> None:
        if feed.stream is None:
            return
        if feed.kind == "video" and feed.base_ts is None and not keyframe:
            return  # after a switch (a reconnect), wait for the next keyframe
        pts = feed.pts(timestamp, elapsed)
        self._mux(feed.stream, data, pts, feed.time_base, keyframe)

    def _mux(
        self,
        stream: av.stream.Stream,
        data: bytes,
        pts: int,
        time_base: Fraction,
        keyframe: bool,
    ) -> None:
        if self._container is None or not data:
            return
        packet = av.Packet(data)
        packet.stream = stream
        packet.time_base = time_base
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        try:
            self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            logger.warning("recording %s: dropped a packet: %s", self.path.name, exc)

    def close(self) -> None:
        """Finish the file; a part that never received a frame leaves no file behind."""
        if self.closed:
            return
        self.closed = True
        for feed in self._feeds.values():
            self._attach(feed, None, False)
        if self._container is None:
            return
        if not self._fixed and self._pending:
            self._fix_streams()
        container, self._container = self._container, None
        wrote = self._fixed
        try:
            container.close()
        except (av.FFmpegError, ValueError, OSError) as exc:
            logger.warning("recording %s did not finish cleanly: %s", self.path.name, exc)
        if not wrote:
            self.path.unlink(missing_ok=True)
