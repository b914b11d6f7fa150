"""Stories about abuse limits: oversized SDP, too many peers, closing, malformed signalling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiortc import RTCPeerConnection
from media_clients import (
    LOOPBACK_ONLY,
    Conference,
    SyntheticCamera,
    eventually,
    publisher_offer,
)

from streaming import MediaError


async def test_an_sdp_over_64_kib_is_refused(conference: Conference) -> None:
    """SECURITY 6: an SDP over 64 KiB is refused with media.sdp_too_large."""
    pc = RTCPeerConnection(LOOPBACK_ONLY)
    conference.publishers.append(pc)
    sdp = await publisher_offer(pc, [SyntheticCamera()])
    padded = sdp + "a=x-padding:" + "A" * 65536 + "\r\n"
    with pytest.raises(MediaError) as refused:
        await conference.server.publish(
            session_id="s1", person_id="p", connection_id="c", may_publish=True, sdp=padded
        )
    assert refused.value.code == "media.sdp_too_large"
    with pytest.raises(MediaError) as refused:
        await conference.server.answer(connection_id="c", peer_id="x", sdp=padded)
    assert refused.value.code == "media.sdp_too_large"
    assert conference.server._peers == {}


@pytest.mark.parametrize(
    "sdp",
    [
        "garbage",
        "v=0\r\nm=video\r\n",
        "v=0\r\no=- 1 1 IN IP4 0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ],
)
async def test_malformed_sdp_is_refused_cleanly(conference: Conference, sdp: str) -> None:
    """SECURITY 10: malformed SDP is a domain error, never an unhandled exception or a leak."""
    with pytest.raises(MediaError) as refused:
        await conference.server.publish(
            session_id="s1", person_id="p", connection_id="c", may_publish=True, sdp=sdp
        )
    assert refused.value.code == "media.bad_sdp"
    assert conference.server._peers == {}


async def test_an_answer_for_an_unknown_peer_is_refused(conference: Conference) -> None:
    viewer = await conference.watch("s1", "attendee")
    assert viewer.peer_id is not None
    with pytest.raises(MediaError) as refused:
        await conference.server.answer(
            connection_id="someone-else", peer_id=viewer.peer_id, sdp=viewer.pc.localDescription.sdp
        )
    assert refused.value.code == "media.peer_not_found"
    with pytest.raises(MediaError) as refused:  # answered already: no offer is waiting
        await conference.server.answer(
            connection_id="conn-attendee",
            peer_id=viewer.peer_id,
            sdp=viewer.pc.localDescription.sdp,
        )
    assert refused.value.code == "media.bad_sdp"


async def test_a_person_holds_at_most_the_configured_number_of_peers(
    conference_factory: Callable[..., Conference],
) -> None:
    """SECURITY 9: peers are counted across all of a person's connections."""
    conference = conference_factory(max_peers_per_person=2)
    await conference.watch("s1", "attendee", connection_id="tab1")
    await conference.watch("s2", "attendee", connection_id="tab2")
    with pytest.raises(MediaError) as refused:
        await conference.watch("s1", "attendee", connection_id="tab3")
    assert refused.value.code == "media.too_many_peers"
    with pytest.raises(MediaError) as refused:
        await conference.publish("s1", "attendee", connection_id="tab3")
    assert refused.value.code == "media.too_many_peers"
    await conference.watch("s1", "someone-else")  # others are not affected

    await conference.server.close_connection("tab1")
    await conference.watch("s1", "attendee", connection_id="tab3")


async def test_closing_a_connection_closes_its_peers_within_5_seconds(
    conference: Conference,
) -> None:
    """SECURITY 9: all of a connection's peer connections close within 5 s of its socket."""
    publisher = await conference.publish("s1", "speaker", connection_id="speaker-socket")
    viewer = await conference.watch(
        "s1", "speaker", connection_id="speaker-socket", sees_green_room=True
    )
    chair = await conference.watch("s1", "chair", sees_green_room=True)
    await eventually(
        lambda: chair.counter("video") is not None and chair.counter("video").packets > 0, 5
    )
    peers = [p for p in conference.server._peers.values() if p.connection_id == "speaker-socket"]
    assert len(peers) == 2

    started = time.monotonic()
    await conference.server.close_connection("speaker-socket")
    assert time.monotonic() - started < 5.0
    assert all(p.pc.connectionState == "closed" for p in peers)
    assert all(p.connection_id != "speaker-socket" for p in conference.server._peers.values())
    # The client side notices too (DTLS close / consent), without anyone calling close.
    await eventually(
        lambda: (
            publisher.connectionState in ("closed", "failed")
            or viewer.pc.connectionState in ("closed", "failed")
        ),
        5,
        "client notices",
    )
    await asyncio.sleep(0)


async def test_a_failed_peer_is_closed_and_dropped(conference: Conference) -> None:
    """A viewer whose connection fails (ICE consent lost, say) is closed and forgotten."""
    viewer = await conference.watch("s1", "attendee")
    peer = conference.server._peers[viewer.peer_id or ""]
    # What aiortc does when ICE or DTLS fails: the state changes and the event fires.
    peer.pc._RTCPeerConnection__connectionState = "failed"  # type: ignore[attr-defined]
    peer.pc.emit("connectionstatechange")
    await eventually(lambda: viewer.peer_id not in conference.server._peers, 5, "peer dropped")
    await eventually(lambda: peer.pc.connectionState == "closed", 5, "peer closed")
    assert conference.server.stage("s1")["viewers"] == 0
