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


async def live_with_one_kind_muted_then_unmuted(
    conference: Conference, kind: str
) -> list[pathlib.Path]:
    """The speaker goes live with `kind` muted; 1.5 s later the chair unmutes it; 1.5 s later the
    stage goes off. The files that run recorded."""
    await conference.publish("s1", "speaker")
    await conference.server.set_muted(session_id="s1", person_id="speaker", kind=kind, muted=True)
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await asyncio.sleep(1.5)  # the file's streams are fixed by then
    await conference.server.set_muted(session_id="s1", person_id="speaker", kind=kind, muted=False)
    await asyncio.sleep(1.5)
    await conference.server.set_live(session_id="s1", person_id="speaker", live=False)
    return conference.server.recordings("s1")


def streams_of(file: pathlib.Path) -> list[str]:
    with av.open(str(file)) as container:
        return [stream.codec_context.name for stream in container.streams]


def packets_per_stream(file: pathlib.Path) -> list[int]:
    with av.open(str(file)) as container:
        counts = [0] * len(container.streams)
        for packet in container.demux():
            if packet.size:
                counts[packet.stream.index] += 1
    return counts


async def test_video_unmuted_after_a_muted_start_is_recorded_in_the_same_file(
    conference: Conference,
) -> None:
    """The stage goes live with the speaker's video muted; the chair unmutes it. The muted camera
    is still watched for its picture size, so the file has its video stream from the start
    (streams cannot be added once written: that made FFmpeg refuse every packet and could take
    the process down on close) and the picture starts with the first keyframe after unmuting."""
    (file,) = await live_with_one_kind_muted_then_unmuted(conference, "video")
    assert streams_of(file) == ["vp8", "opus"]
    video_packets, audio_packets = packets_per_stream(file)
    assert video_packets >= 25 and audio_packets >= 100
    with av.open(str(file)) as container:
        first_video = next(p for p in container.demux(video=0) if p.size)
        assert first_video.is_keyframe
        assert first_video.pts is not None and first_video.pts * first_video.time_base >= 1.2


async def test_audio_unmuted_after_a_video_only_start_is_recorded(conference: Conference) -> None:
    """The stage goes live with the speaker's audio muted and their first keyframe fixes the
    file's streams; the chair then unmutes the audio. Every microphone gets a stream from the
    start, so the unmuted audio is recorded in the same file."""
    (file,) = await live_with_one_kind_muted_then_unmuted(conference, "audio")
    assert streams_of(file) == ["vp8", "opus"]
    video_packets, audio_packets = packets_per_stream(file)
    assert video_packets >= 60 and audio_packets >= 40  # a second of 20 ms frames after unmuting


async def test_a_panel_is_recorded_with_every_live_speaker(conference: Conference) -> None:
    """Two speakers live together: one file with each one's camera and microphone, the first to go
    live first. A third goes live: that file ends and the next has all three."""
    for person in ("first", "second", "third"):
        await conference.publish("s1", person)
    await conference.server.set_live(session_id="s1", person_id="first", live=True)
    await conference.server.set_live(session_id="s1", person_id="second", live=True)
    await asyncio.sleep(2.5)
    await conference.server.set_live(session_id="s1", person_id="third", live=True)
    await asyncio.sleep(2.5)
    await conference.server.end_session("s1")

    # Had the first speaker's keyframe fixed a file's streams before the second went live (the two
    # set_live calls are not one stage change), that file holds the first speaker alone.
    *alone, pair, trio = conference.server.recordings("s1")
    assert [streams_of(file) for file in alone] in ([], [["vp8", "opus"]])
    assert streams_of(pair) == ["vp8", "opus"] * 2
    assert streams_of(trio) == ["vp8", "opus"] * 3
    for file, speakers in ((pair, 2), (trio, 3)):
        counts = packets_per_stream(file)
        assert len(counts) == 2 * speakers
        assert all(n >= 40 for n in counts), counts  # every speaker's picture and voice
    with av.open(str(trio)) as container:
        assert all(
            (s.codec_context.width, s.codec_context.height) == (640, 480)
            for s in container.streams.video
        )
