"""Records a session's live stage to Matroska by muxing the forwarded VP8/Opus frames as they are.

Nothing is decoded or encoded: aiortc's jitter buffer (on the publisher's receiver) reassembles RTP
packets into encoded frames, and each frame becomes one `av.Packet` in a stream created with
`add_mux_stream` (no codec context at all). What is recorded: the featured speaker's camera (VP8) and
microphone (Opus) -- the first speaker who went live and is still live; when they leave the stage
the next live speaker is featured. Timestamps follow the wall clock from the moment the stage went
live, so a speaker's reconnect shows as a gap and the file lasts as long as the stage was live.
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


class _Feed:
    """Maps one recorded track's RTP timestamps onto the file's timeline."""

    def __init__(self, time_base: Fraction) -> None:
        self.clock_rate = time_base.denominator
        self.source: PublishedTrack | None = None
        self.base_pts = 0
        self.base_ts: int | None = None
        self.last_pts = -1

    def switch(self, source: PublishedTrack | None) -> None:
        self.source = source
        self.base_ts = None

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
    """One recording run: a file from the moment a session's stage goes live until it is not."""

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
        self._container: av.container.OutputContainer | None = None
        self._video_stream: av.stream.Stream | None = None
        self._audio_stream: av.stream.Stream | None = None
        self._video = _Feed(VIDEO_TIME_BASE)
        self._audio = _Feed(AUDIO_TIME_BASE)
        self._want_video = False
        self._pending_audio: list[tuple[bytes, float, int]] = []
        self.closed = False
        # Opened now so the file exists for the whole run, even before the first keyframe.
        self._container = av.open(str(path), "w", format="matroska")

    @property
    def featured(self) -> tuple[PublishedTrack | None, PublishedTrack | None]:
        return self._video.source, self._audio.source

    def feature(self, video: PublishedTrack | None, audio: PublishedTrack | None) -> None:
        """Record these tracks from now on (either may be None)."""
        if self.closed:
            return
        if video is not None and (video.codec_name or "VP8").lower() != "vp8":
            video = None  # only VP8 is recorded; see docs/media.md
        for feed, source in ((self._video, video), (self._audio, audio)):
            if feed.source is source:
                continue
            if feed.source is not None:
                feed.source.remove_frame_listener(self._on_frame)
            feed.switch(source)
            if source is not None:
                source.add_frame_listener(self._on_frame)
        if video is not None:
            self._want_video = True
            video.request_keyframe()

    def _on_frame(self, source: PublishedTrack, frame: hooks.JitterFrame) -> None:
        if self.closed:
            return
        elapsed = time.monotonic() - self._started
        if source is self._video.source:
            self._on_video(source, frame, elapsed)
        elif source is self._audio.source:
            self._on_audio(frame, elapsed)

    def _on_video(self, source: PublishedTrack, frame: hooks.JitterFrame, elapsed: float) -> None:
        if (source.codec_name or "").lower() != "vp8":
            return
        keyframe = vp8_frame_is_keyframe(frame.data)
        if self._video_stream is None:
            if self._audio_stream is not None:
                # The file started audio-only (video muted when the stage went live): its streams
                # are fixed once written; adding one now makes FFmpeg fail every packet and can
                # crash the process on close. This run stays audio-only.
                return
            size = vp8_frame_size(frame.data) if keyframe else None
            if size is None:
                return  # a file must start on a keyframe
            self._open_streams(size)
        if self._video.base_ts is None and not keyframe:
            return  # after a switch of speaker, wait for their keyframe
        pts = self._video.pts(frame.timestamp, elapsed)
        self._mux(self._video_stream, frame.data, pts, VIDEO_TIME_BASE, keyframe)

    def _on_audio(self, frame: hooks.JitterFrame, elapsed: float) -> None:
        if self._audio_stream is None:
            if self._want_video and self._video_stream is None:
                # Keep a little audio until the first keyframe defines the file's streams.
                self._pending_audio.append((frame.data, elapsed, frame.timestamp))
                del self._pending_audio[:-150]
                return
            self._open_streams(None)
        pts = self._audio.pts(frame.timestamp, elapsed)
        self._mux(self._audio_stream, frame.data, pts, AUDIO_TIME_BASE, True)

    def _open_streams(self, video_size: tuple[int, int] | None) -> None:
        """Fix the file's streams: video if it starts on a keyframe, and always audio.

        Both, even while the speaker's audio is muted: a stream added after the first packet is
        written makes FFmpeg refuse its packets and abort the whole process when the file is
        closed, so audio unmuted later must find its stream already there.
        """
        assert self._container is not None
        if self._video_stream is not None or self._audio_stream is not None:
            return
        if video_size is not None:
            width, height = video_size
            self._video_stream = self._container.add_mux_stream("vp8", width=width, height=height)
        self._audio_stream = self._container.add_mux_stream("opus", rate=48000)
        pending, self._pending_audio = self._pending_audio, []
        for data, elapsed, timestamp in pending:
            if self._audio_stream is not None:
                pts = self._audio.pts(timestamp, elapsed)
                self._mux(self._audio_stream, data, pts, AUDIO_TIME_BASE, True)

    def _mux(
        self,
        stream: av.stream.Stream | None,
        data: bytes,
        pts: int,
        time_base: Fraction,
        keyframe: bool,
    ) -> None:
        if stream is None or self._container is None or not data:
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
        """Finish the file; a run that never received a frame leaves no file behind."""
        if self.closed:
            return
        self.closed = True
        for feed in (self._video, self._audio):
            if feed.source is not None:
                feed.source.remove_frame_listener(self._on_frame)
            feed.switch(None)
        container, self._container = self._container, None
        if container is None:
            return
        wrote = self._video_stream is not None or self._audio_stream is not None
        if not wrote and self._pending_audio:
            self._container = container
            self._open_streams(None)
            self._container = None
            wrote = True
        try:
            container.close()
        except (av.FFmpegError, ValueError, OSError) as exc:
            logger.warning("recording %s did not finish cleanly: %s", self.path.name, exc)
        if not wrote:
            self.path.unlink(missing_ok=True)
