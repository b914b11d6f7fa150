"""Stories about recording: a live stage becomes a Matroska file of the forwarded VP8 + Opus."""

from __future__ import annotations

import asyncio
import pathlib
import time

import av
from media_clients import Conference, eventually


async def test_a_live_session_is_recorded_without_transcoding(conference: Conference) -> None:
    """The file opens with PyAV, holds VP8 + Opus, and lasts as long as the stage was live."""
    await conference.publish("s1", "speaker")
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    await eventually(
        lambda: chair.counter("video") is not None and chair.counter("video").frames > 5, 5
    )
    await asyncio.sleep(0.5)  # green room time is not recorded
    assert conference.server.stage("s1")["recording"] is None

    went_live = time.monotonic()
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    assert conference.server.stage("s1")["recording"] is not None
    assert conference.server.recordings("s1") == []  # still being written
    await asyncio.sleep(3.0)
    await conference.server.end_session("s1")
    live_for = time.monotonic() - went_live

    files = conference.server.recordings("s1")
    assert len(files) == 1 and files[0].parent == conference.recordings
    assert files[0].name.startswith("s1-") and files[0].suffix == ".mkv"
    with av.open(str(files[0])) as container:
        codecs = sorted(stream.codec_context.name for stream in container.streams)
        assert codecs == ["opus", "vp8"]
        assert container.duration is not None
        duration = container.duration / av.time_base
        assert abs(duration - live_for) <= 1.0, f"{duration:.2f} s recorded, {live_for:.2f} s live"
        video = container.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (640, 480)
        decoded = sum(1 for _ in container.decode(video=0))  # the test may decode; the server not
    assert decoded >= 25 * (live_for - 1.0)


async def test_each_live_period_is_its_own_file(conference: Conference) -> None:
    await conference.publish("s1", "speaker")
    for _ in range(2):
        await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
        await asyncio.sleep(1.2)
        await conference.server.set_live(session_id="s1", person_id="speaker", live=False)
    files = conference.server.recordings("s1")
    assert len(files) == 2 and files[0] != files[1]
    assert conference.server.recordings("s10") == []


async def live_with_one_kind_muted_then_unmuted(conference: Conference, kind: str) -> pathlib.Path:
    """The speaker goes live with `kind` muted; 1.5 s later the chair unmutes it; 1.5 s later the
    stage goes off. The one file that run recorded."""
    await conference.publish("s1", "speaker")
    await conference.server.set_muted(session_id="s1", person_id="speaker", kind=kind, muted=True)
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await asyncio.sleep(1.5)  # the file's streams are fixed by then
    await conference.server.set_muted(session_id="s1", person_id="speaker", kind=kind, muted=False)
    await asyncio.sleep(1.5)
    await conference.server.set_live(session_id="s1", person_id="speaker", live=False)
    (file,) = conference.server.recordings("s1")
    return file


async def test_video_unmuted_after_an_audio_only_start_keeps_the_file_audio_only(
    conference: Conference,
) -> None:
    """The stage goes live with the speaker's video muted, then the chair unmutes it: the file's
    streams are fixed once written, so the run stays audio-only (adding a stream then made FFmpeg
    refuse every packet and could take the server process down when the file was closed)."""
    file = await live_with_one_kind_muted_then_unmuted(conference, "video")
    with av.open(str(file)) as container:
        assert [stream.codec_context.name for stream in container.streams] == ["opus"]
        assert container.duration is not None and container.duration / av.time_base > 1.5


async def test_audio_unmuted_after_a_video_only_start_is_recorded(conference: Conference) -> None:
    """The stage goes live with the speaker's audio muted and their first keyframe fixes the
    file's streams; the chair then unmutes the audio. The file has an audio stream from the start,
    so the unmuted audio is recorded (adding the stream then aborted the server process when the
    file was closed)."""
    file = await live_with_one_kind_muted_then_unmuted(conference, "audio")
    with av.open(str(file)) as container:
        assert sorted(s.codec_context.name for s in container.streams) == ["opus", "vp8"]
        audio_packets = sum(1 for p in container.demux(audio=0) if p.size)
    assert audio_packets >= 40  # about a second of 20 ms Opus frames after the unmute
