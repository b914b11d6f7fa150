"""Stories about the server's ICE: it answers the clients' connectivity checks and never starts
one, so no candidate a client lists makes the server send anything anywhere."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from media_clients import (
    Conference,
    Decoy,
    StunSent,
    Viewer,
    eventually,
    server_connections,
    wait_connected,
)

from streaming.peers import PublishingPeer, ViewingPeer

# aioice sends a consent check 4-6 s after connecting; a full ICE agent would have sent several.
QUIET = 6.5


def packets(viewer: Viewer) -> int:
    return sum(counter.packets for counter in viewer.counters.values())


def ice_role(pc: RTCPeerConnection) -> str:
    (transceiver, *_) = pc.getTransceivers()
    return str(transceiver.receiver.transport.transport.role)


async def test_the_server_never_sends_a_connectivity_check_whatever_clients_list(
    conference: Conference,
) -> None:
    """SECURITY 22: a speaker's offer and an attendee's answer both name a decoy address as their
    best ICE candidate. The server's SDP say `a=ice-lite`; both connect on their real candidates
    and media flows; the decoy receives nothing, and the server sends STUN responses only, never
    a request, through connecting and past the first consent interval."""
    decoy = Decoy()
    stun = StunSent(lambda connection: connection in server_connections(conference.server))
    try:
        with stun.observe():
            sent: list[str] = []

            def name_decoy(sdp: str) -> str:
                sent.append(decoy.name_in(sdp))
                return sent[-1]

            speaker = await conference.publish("s1", "speaker", edit=name_decoy)
            await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
            attendee = Viewer()
            conference.viewers["conn-attendee"] = attendee
            offer = await conference.server.watch(
                session_id="s1",
                person_id="attendee",
                connection_id="conn-attendee",
                sees_green_room=False,
            )

            async def answer(sdp: str) -> None:
                sent.append(decoy.name_in(sdp))
                await conference.server.answer(
                    connection_id="conn-attendee", peer_id=offer["peer_id"], sdp=sent[-1]
                )

            await attendee.accept(offer, answer)
            assert all(decoy.candidate in sdp.split("\r\n") for sdp in sent) and len(sent) == 2
            await wait_connected(speaker)
            await wait_connected(attendee.pc)
            await eventually(lambda: packets(attendee) > 100, 5, "media reaches the attendee")
            await asyncio.sleep(QUIET)
            flowing = packets(attendee)
            await eventually(lambda: packets(attendee) > flowing + 50, 3, "media keeps flowing")

        assert decoy.received() == []
        assert stun.requests == []
        assert stun.responses > 0  # the server did answer the clients' checks
        # The clients control and nominate; the server is the controlled agent of both.
        assert ice_role(speaker) == "controlling" and ice_role(attendee.pc) == "controlling"
        peers = list(conference.server._peers.values())
        assert {type(p) for p in peers} == {PublishingPeer, ViewingPeer}
        assert all(ice_role(p.pc) == "controlled" for p in peers)
        # What the server said: lite, in the speaker's answer and in the attendee's offer.
        assert "a=ice-lite" in speaker.remoteDescription.sdp.split("\r\n")
        assert "a=ice-lite" in offer["sdp"].split("\r\n")
    finally:
        decoy.close()


async def test_a_client_that_missed_ice_lite_is_told_to_take_control_and_connects(
    conference: Conference,
) -> None:
    """SECURITY 22: a client that answers the server's offer as if the server were a full agent
    (its `a=ice-lite` lost on the way) starts as the controlled agent too. The server answers its
    checks with 487 Role Conflict, never a check of its own; the client takes control, nominates,
    and receives the stage."""
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    stun = StunSent(lambda connection: connection in server_connections(conference.server))
    attendee = Viewer()
    conference.viewers["conn-attendee"] = attendee
    with stun.observe():
        offer = await conference.server.watch(
            session_id="s1",
            person_id="attendee",
            connection_id="conn-attendee",
            sees_green_room=False,
        )
        assert "a=ice-lite" in offer["sdp"].split("\r\n")
        stripped = {**offer, "sdp": offer["sdp"].replace("a=ice-lite\r\n", "")}

        async def answer(sdp: str) -> None:
            await conference.server.answer(
                connection_id="conn-attendee", peer_id=offer["peer_id"], sdp=sdp
            )

        await attendee.accept(stripped, answer)
        await wait_connected(attendee.pc)
        await eventually(lambda: packets(attendee) > 50, 5, "media reaches the attendee")
    assert ice_role(attendee.pc) == "controlling"  # switched on the server's 487
    assert stun.requests == [] and stun.responses > 0
