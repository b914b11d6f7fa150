"""Stories about the forwarder: viewers get the speaker's encoded stream as it is, at full rate."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from media_clients import Conference, eventually

from streaming.peers import PublishingPeer, ViewingPeer


def server_peers(conference: Conference, kind: type) -> list[Any]:
    return [p for p in conference.server._peers.values() if isinstance(p, kind)]


async def test_three_viewers_receive_the_speakers_video_at_its_frame_rate(
    conference: Conference,
) -> None:
    """A live speaker at 30 fps reaches three attendees at >= 25 fps each (counted, not decoded)."""
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    viewers = [await conference.watch("s1", f"attendee{i}") for i in range(3)]
    await eventually(
        lambda: all(v.counter("video") and v.counter("video").frames > 10 for v in viewers),
        5,
        "first frames",
    )
    start = time.monotonic()
    await asyncio.sleep(3.0)
    end = time.monotonic()
    for viewer in viewers:
        video = viewer.counter("video")
        audio = viewer.counter("audio")
        assert video is not None and audio is not None
        assert video.fps(start, end) >= 25, f"only {video.fps(start, end):.1f} fps"
        assert audio.packets > 100  # Opus at 50 packets per second


async def test_the_server_never_decodes_or_encodes_media(
    conference: Conference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Codec creation is counted at aiortc's factories: only the speaker's own client encodes."""
    encoders: list[Any] = []
    decoders: list[Any] = []
    real_get_encoder = aiortc.rtcrtpsender.get_encoder
    real_get_decoder = aiortc.rtcrtpreceiver.get_decoder

    def counting_encoder(codec: Any) -> Any:
        # The caller is RTCRtpSender._next_encoded_frame: note which sender asks.
        encoders.append(inspect.currentframe().f_back.f_locals.get("self"))  # type: ignore[union-attr]
        return real_get_encoder(codec)

    def counting_decoder(codec: Any) -> Any:
        decoders.append(codec)
        return real_get_decoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", counting_encoder)
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", counting_decoder)

    speaker = await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    viewers = [await conference.watch("s1", f"attendee{i}") for i in range(2)]
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    await eventually(
        lambda: all(
            v.counter("video") and v.counter("video").frames > 30 for v in [*viewers, chair]
        ),
        6,
        "video flowing",
    )

    speaker_senders = set(speaker.getSenders())
    assert encoders, "the counting hook saw no encoder at all"
    assert all(sender in speaker_senders for sender in encoders), "the server created an encoder"
    assert decoders == [], "a decoder was created (the server's, as no test client decodes)"
    viewing = server_peers(conference, ViewingPeer)
    assert len(viewing) == 3 and all(len(v.slots) == 2 for v in viewing)


def test_the_streaming_package_has_no_transcoding_path() -> None:
    """No MediaRelay, no codec context, no frame objects anywhere in streaming/."""
    import pathlib

    import streaming

    root = pathlib.Path(streaming.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        for forbidden in (
            "MediaRelay",
            "CodecContext",
            "get_encoder",
            "get_decoder",
            ".decode(",
            ".encode(frame",
        ):
            assert forbidden not in text, f"{path.name} mentions {forbidden}"


async def test_a_late_joiner_sees_a_picture_within_a_second(conference: Conference) -> None:
    """Joining mid-stream, a viewer's first decodable frame arrives < 1 s after its answer."""
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    early = await conference.watch("s1", "early")
    await eventually(lambda: early.counter("video") and early.counter("video").frames > 45, 6)

    late = await conference.watch("s1", "late", decode=True)
    answered = late.answered_at
    assert answered is not None
    arrived, frame = await asyncio.wait_for(late.frames.get(), 3.0)
    assert frame.width == 640 and frame.height == 480
    assert arrived - answered < 1.0, f"first picture after {arrived - answered:.2f} s"


CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) (\d+) typ", re.MULTILINE)
UNIQUE_ADDRESS = "198.51.100.77"  # TEST-NET-2: stands for the speaker's public address


def with_fake_candidate(sdp: str) -> str:
    line = f"a=candidate:9 1 udp 2130706431 {UNIQUE_ADDRESS} 47001 typ host\r\n"
    return sdp.replace("a=end-of-candidates\r\n", line + "a=end-of-candidates\r\n")


async def test_no_sdp_sent_to_a_viewer_carries_the_speakers_address(
    conference: Conference,
) -> None:
    """SECURITY 11: every candidate a viewer is given is the server's own; no peer-to-peer path."""
    speaker = await conference.publish("s1", "speaker", edit=with_fake_candidate)
    speaker_candidates = set(CANDIDATE.findall(speaker.localDescription.sdp))
    assert speaker_candidates
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    attendee = await conference.watch("s1", "attendee")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await conference.settle()
    await eventually(lambda: attendee.counter("video") is not None, 5)

    server_candidates: set[tuple[str, str]] = set()
    for peer in conference.server._peers.values():
        server_candidates |= set(CANDIDATE.findall(peer.pc.localDescription.sdp))

    sent = [*chair.offers, *attendee.offers]
    sent += [m["sdp"] for _, m in conference.messages if "sdp" in m]
    assert len(sent) >= 3
    for sdp in sent:
        assert UNIQUE_ADDRESS not in sdp
        candidates = set(CANDIDATE.findall(sdp))
        if "\nm=" in sdp:
            assert candidates, "a viewer offer without the server's candidates"
        assert candidates <= server_candidates
        assert not candidates & speaker_candidates
    publishing = server_peers(conference, PublishingPeer)
    assert UNIQUE_ADDRESS not in publishing[0].pc.localDescription.sdp
