"""Stories about the stage: green room, going live, muting, attendees who may not publish, reconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiortc import RTCPeerConnection
from media_clients import (
    LOOPBACK_ONLY,
    Conference,
    Decoy,
    PacketCounter,
    SyntheticCamera,
    Tone,
    Viewer,
    apply_answer,
    eventually,
    publisher_offer,
    wait_connected,
)

from streaming import MediaError
from streaming.peers import PublishingPeer


def receiving(viewer: Viewer, person_id: str, kind: str) -> bool:
    counter = viewer.counter(kind, person_id)
    return counter is not None and counter.packets > 0


def growing(viewer: Viewer, person_id: str, kind: str) -> Callable[[], bool]:
    counter = viewer.counter(kind, person_id)
    start = counter.packets if counter else 0

    def check() -> bool:
        current = viewer.counter(kind, person_id)
        return current is not None and current.packets > start + 5

    return check


async def test_a_green_room_speaker_reaches_the_chair_and_attendees_only_once_live(
    conference: Conference,
) -> None:
    """The chair sees a speaker in the green room; attendees see nothing until set_live."""
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    attendee = await conference.watch("s1", "attendee")
    await conference.publish("s1", "speaker")
    await conference.settle()

    await eventually(
        lambda: receiving(chair, "speaker", "video") and receiving(chair, "speaker", "audio"),
        5,
        "chair receives green room",
    )
    await asyncio.sleep(0.5)
    assert attendee.tracks == [] and sum(c.packets for c in attendee.counters.values()) == 0
    assert conference.server.stage("s1")["live"] == []

    offers_before = len(attendee.offers)
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await conference.settle()
    assert len(attendee.offers) == offers_before + 1  # renegotiated, no new connection
    await eventually(
        lambda: receiving(attendee, "speaker", "video") and receiving(attendee, "speaker", "audio"),
        5,
        "attendee receives",
    )
    assert conference.server.stage("s1")["live"] == ["speaker"]

    await conference.server.set_live(session_id="s1", person_id="speaker", live=False)
    await conference.settle()
    assert attendee.tracks == []
    assert chair.kinds() == {("speaker", "video"), ("speaker", "audio")}


async def test_a_speaker_does_not_receive_their_own_stream(conference: Conference) -> None:
    await conference.publish("s1", "speaker")
    own = await conference.watch(
        "s1", "speaker", connection_id="conn-speaker-view", sees_green_room=True
    )
    assert own.tracks == []


async def test_muting_audio_removes_it_for_attendees_but_not_the_chair(
    conference: Conference,
) -> None:
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    attendee = await conference.watch("s1", "attendee")
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    await eventually(lambda: receiving(attendee, "speaker", "audio"), 5)

    await conference.server.set_muted(
        session_id="s1", person_id="speaker", kind="audio", muted=True
    )
    await conference.settle()
    assert attendee.kinds() == {("speaker", "video")}
    audio = attendee.counters[
        next(
            iter(
                mid
                for mid, c in attendee.counters.items()
                if c is not None and mid not in {t["mid"] for t in attendee.tracks}
            )
        )
    ]
    stopped_at = audio.packets
    await eventually(growing(attendee, "speaker", "video"), 3, "video continues")
    await eventually(growing(chair, "speaker", "audio"), 3, "chair still hears")
    assert audio.packets <= stopped_at + 2  # at most what was in flight
    assert conference.server.stage("s1")["publishers"][0]["muted"] == {
        "audio": True,
        "video": False,
    }

    await conference.server.set_muted(
        session_id="s1", person_id="speaker", kind="audio", muted=False
    )
    await conference.settle()
    assert attendee.kinds() == {("speaker", "video"), ("speaker", "audio")}
    await eventually(growing(attendee, "speaker", "audio"), 3, "audio back")


async def test_an_attendees_offer_is_refused_without_any_peer_connection(
    conference: Conference,
) -> None:
    """SECURITY 4 and 22: a client that may not publish gets no peer connection from its offer
    at all: it is refused with media.forbidden, nothing is made of it, and a UDP socket that its
    offer names as an ICE candidate receives nothing."""
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    decoy = Decoy()
    try:
        pc = RTCPeerConnection(LOOPBACK_ONLY)
        conference.publishers.append(pc)
        sdp = await publisher_offer(pc, [SyntheticCamera(), Tone()], edit=decoy.name_in)
        assert decoy.candidate in sdp.split("\r\n")
        peers_before = dict(conference.server._peers)
        with pytest.raises(MediaError) as refused:
            await conference.server.publish(
                session_id="s1",
                person_id="attendee",
                connection_id="conn-attendee",
                may_publish=False,
                sdp=sdp,
            )
        assert refused.value.code == "media.forbidden"
        assert conference.server._peers == peers_before  # the chair's viewing peer only
        await asyncio.sleep(3.0)
        assert decoy.received() == []
        assert conference.server.stage("s1")["publishers"] == []
        assert chair.tracks == []
    finally:
        decoy.close()


async def test_a_publisher_who_reconnects_within_the_grace_period_stays_live(
    conference_factory: Callable[..., Conference],
) -> None:
    """SECURITY 18: the speaker's connection drops and comes back; the chair does nothing."""
    conference = conference_factory(reconnect_grace=1.5)
    await conference.publish("s1", "speaker", connection_id="first")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await conference.server.set_muted(
        session_id="s1", person_id="speaker", kind="video", muted=False
    )
    attendee = await conference.watch("s1", "attendee")
    await eventually(lambda: receiving(attendee, "speaker", "video"), 5)
    offers = len(attendee.offers)

    await conference.server.close_connection("first")
    stage = conference.server.stage("s1")["publishers"]
    assert stage[0]["live"] is True and stage[0]["connected"] is False

    await asyncio.sleep(0.5)
    await conference.publish("s1", "speaker", connection_id="second")
    stage = conference.server.stage("s1")["publishers"]
    assert stage[0]["live"] is True and stage[0]["connected"] is True
    # The attendee's m-lines simply switch to the new connection: same SSRC, continuous numbers.
    await eventually(growing(attendee, "speaker", "video"), 5, "video resumes")
    assert len(attendee.offers) == offers
    video = attendee.counter("video", "speaker")
    assert video is not None and len(video.ssrcs) == 1 and video.sequence_jumps == 0
    await asyncio.sleep(1.5)  # past the grace period: still on stage
    assert conference.server.stage("s1")["live"] == ["speaker"]

    await conference.server.close_connection("second")
    await asyncio.sleep(2.0)
    await conference.settle()
    assert conference.server.stage("s1")["publishers"] == []
    assert attendee.tracks == []


async def test_a_new_connection_from_the_same_socket_replaces_the_publishers_old_one(
    conference: Conference,
) -> None:
    """A page restarts a publishing connection that failed while its socket stayed up: the new
    offer comes from the same socket with new ICE credentials. It is a new connection, not a
    renegotiation of the failed one: it replaces it, and the speaker stays live."""
    first = await conference.publish("s1", "speaker", connection_id="tab")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    attendee = await conference.watch("s1", "attendee")
    await eventually(lambda: receiving(attendee, "speaker", "video"), 5)
    (old,) = [p for p in conference.server._peers.values() if isinstance(p, PublishingPeer)]

    second = await conference.publish("s1", "speaker", connection_id="tab")
    await eventually(lambda: old.closed, 5, "the old connection closed")
    (new,) = [p for p in conference.server._peers.values() if isinstance(p, PublishingPeer)]
    assert new is not old and new.connection_id == "tab"
    await wait_connected(second)
    await first.close()  # the page dropped it
    await eventually(growing(attendee, "speaker", "video"), 5, "video from the new connection")
    assert conference.server.stage("s1")["live"] == ["speaker"]


async def test_a_screen_share_added_mid_session_reaches_viewers_by_renegotiation(
    conference: Conference,
) -> None:
    """The speaker adds a second video track on the same connection; viewers get a 'screen'."""
    speaker = await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    attendee = await conference.watch("s1", "attendee")
    await eventually(lambda: receiving(attendee, "speaker", "video"), 5)

    speaker.addTransceiver(SyntheticCamera(width=320, height=240), direction="sendonly")
    await speaker.setLocalDescription(await speaker.createOffer())
    reply = await conference.server.publish(
        session_id="s1",
        person_id="speaker",
        connection_id="conn-speaker",
        may_publish=True,
        sdp=speaker.localDescription.sdp,
    )
    await apply_answer(speaker, reply["sdp"])
    await conference.settle()

    sources = {(t["person_id"], t["source"]) for t in attendee.tracks}
    assert sources == {("speaker", "camera"), ("speaker", "mic"), ("speaker", "screen")}
    await eventually(
        lambda: (attendee.counter("video", "speaker", "screen") or PacketCounter()).frames > 10,
        5,
        "screen frames",
    )
    assert len(conference.server.stage("s1")["publishers"][0]["tracks"]) == 3
    await eventually(growing(attendee, "speaker", "video"), 3, "camera continues")


async def test_an_h264_speaker_is_forwarded_as_h264(conference: Conference) -> None:
    """A viewer gets the speaker's codec as is: H.264 in, H.264 out, decodable by the viewer."""

    from aiortc import RTCPeerConnection, RTCRtpSender

    pc = RTCPeerConnection(LOOPBACK_ONLY)
    conference.publishers.append(pc)
    transceiver = pc.addTransceiver(SyntheticCamera(width=320, height=240), direction="sendonly")
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
    )
    await pc.setLocalDescription(await pc.createOffer())
    reply = await conference.server.publish(
        session_id="s1",
        person_id="speaker",
        connection_id="conn-speaker",
        may_publish=True,
        sdp=pc.localDescription.sdp,
    )
    await apply_answer(pc, reply["sdp"])
    chair = await conference.watch("s1", "chair", sees_green_room=True, decode=True)
    _, frame = await asyncio.wait_for(chair.frames.get(), 5.0)
    assert (frame.width, frame.height) == (320, 240)
    publishing = next(p for p in conference.server._peers.values() if isinstance(p, PublishingPeer))
    assert publishing.tracks["camera"].codec_name == "H264"
    # The viewer's m-line lists VP8 first, but it is sent the H.264 payload type, and decodes it.
    assert "video/H264" in {c.mimeType for c in chair.pc.getTransceivers()[0]._codecs}


async def test_an_offer_with_nobody_on_stage_is_one_browsers_accept(
    conference: Conference,
) -> None:
    """aiortc writes an empty `a=group:BUNDLE` when it offers no m-line; Chromium refuses that
    offer ("A BUNDLE group contains a MID='' matching no m= section"), so it is left out. Once a
    speaker is live the renegotiated offer bundles every m-line again."""
    attendee = await conference.watch("s1", "attendee")
    (first,) = attendee.offers
    assert "m=" not in first
    assert not [line for line in first.splitlines() if line.strip() == "a=group:BUNDLE"]

    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    await conference.settle()
    await eventually(lambda: receiving(attendee, "speaker", "video"), 5, "attendee receives")
    bundle = [line for line in attendee.offers[-1].splitlines() if line.startswith("a=group:")]
    assert bundle and len(bundle[0].split()) == 3  # BUNDLE 0 1


async def test_an_attendee_on_a_weak_link_listens_without_video_and_can_have_it_back(
    conference: Conference,
) -> None:
    """ "Audio only": the attendee's page watches again with `audio_only`. Its earlier viewing
    connection is replaced (not kept beside the new one), the offer carries the speaker's sound
    and no video, and the sound keeps coming when the stage changes (the screen share starting
    adds nothing for it). Watching again without it brings the picture back."""
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    watching = await conference.watch("s1", "attendee")
    await eventually(lambda: receiving(watching, "speaker", "video"), 5, "video")

    listening = await conference.watch("s1", "attendee", audio_only=True)
    await watching.close()  # the page closes its earlier connection
    viewing = [p for p in conference.server._peers.values() if p.person_id == "attendee"]
    assert len(viewing) == 1 and viewing[0].audio_only
    assert {t["kind"] for t in listening.tracks} == {"audio"}
    assert "m=video" not in listening.offers[-1]
    await eventually(lambda: receiving(listening, "speaker", "audio"), 5, "sound")

    await conference.publish("s1", "speaker", tracks=[Tone(), SyntheticCamera(), SyntheticCamera()])
    await conference.settle()
    assert {t["kind"] for t in listening.tracks} == {"audio"}

    seeing = await conference.watch("s1", "attendee")
    await listening.close()
    await eventually(lambda: receiving(seeing, "speaker", "video"), 5, "video again")
    assert len([p for p in conference.server._peers.values() if p.person_id == "attendee"]) == 1
