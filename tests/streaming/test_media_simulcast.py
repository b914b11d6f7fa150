"""A speaker's camera in three simulcast layers: the server receives them all without decoding,
records the top one, and gives each viewer the best layer its link carries, switching on a
keyframe with the viewer's stream continuous (streaming/simulcast.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from media_clients import (
    Conference,
    SimulcastPublisher,
    Viewer,
    eventually,
    say_link,
    say_link_until_heard,
    tap,
)

from streaming import forwarder
from streaming.forwarder import PublishedTrack, ViewerSlot
from streaming.payloads import vp8_descriptor
from streaming.peers import PublishingPeer, ViewingPeer


def camera_of(conference: Conference) -> PublishedTrack:
    (peer,) = [p for p in conference.server._peers.values() if isinstance(p, PublishingPeer)]
    return peer.tracks["camera"]


def video_slot(conference: Conference, viewer: Viewer) -> ViewerSlot:
    peer = next(
        p
        for p in conference.server._peers.values()
        if isinstance(p, ViewingPeer)
        and p.pc.localDescription is not None
        and p.id == viewer.peer_id
    )
    (slot,) = [s for s in peer.slots if s.kind == "video" and s.key is not None]
    return slot


async def test_three_layers_are_received_and_an_unimpaired_viewer_gets_the_top_one(
    conference: Conference,
) -> None:
    """The speaker's browser offers three layers: the answer takes all three, each is its own
    stream on the server (its own SSRC, packets and rate, smallest first), and a viewer whose
    link is not limited sees the full 640x480 picture."""
    publisher = SimulcastPublisher()
    try:
        answer = await publisher.publish(conference, "s1", "speaker")
        assert "a=simulcast:recv q;h;f" in answer
        assert all(f"a=rid:{rid} recv" in answer for rid in "qhf")
        await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
        camera = camera_of(conference)
        assert [layer.rid for layer in camera.layers] == ["q", "h", "f"]
        viewer = await conference.watch("s1", "attendee", decode=True)
        await say_link(viewer, video_slot(conference, viewer), 10_000_000)
        await eventually(
            lambda: all(layer.bitrate_bps > 0 for layer in camera.layers), 8, "every layer"
        )
        assert len({layer.ssrc for layer in camera.layers}) == 3
        rates = [layer.bitrate_bps for layer in camera.layers]
        assert rates == sorted(rates), rates
        sizes = await frame_sizes(viewer, 2.0)
        assert sizes == {(640, 480)}
        assert video_slot(conference, viewer).layer == "f"
    finally:
        await publisher.close()


async def frame_sizes(viewer: Viewer, seconds: float) -> set[tuple[int, int]]:
    sizes = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, frame = await asyncio.wait_for(viewer.frames.get(), 5)
        sizes.add((frame.width, frame.height))
    return sizes


async def test_a_slow_viewer_steps_down_at_once_and_back_up_when_its_link_recovers(
    conference: Conference,
) -> None:
    """Beside an unimpaired viewer, one whose link carries 200 kbit/s: within two seconds it
    gets the quarter-size layer, and its picture never stops meanwhile (the full layer goes on
    until the quarter layer's keyframe). Its stream stays one stream: sequence numbers go on by
    one across the switch and timestamps forward. When its link carries plenty again it steps
    up one layer at a time, each after the next has fitted for a while. The other viewer keeps
    the full picture throughout."""
    publisher = SimulcastPublisher()
    try:
        await publisher.publish(conference, "s1", "speaker")
        await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
        camera = camera_of(conference)
        slow = await conference.watch("s1", "slow", decode=True)
        fast = await conference.watch("s1", "fast", decode=True)
        slow_slot, fast_slot = video_slot(conference, slow), video_slot(conference, fast)
        # Both links carry plenty to begin with (aiortc's own estimate, which wanders, is not
        # sent: a browser's is steadier).
        await say_link(slow, slow_slot, 10_000_000)
        await say_link(fast, fast_slot, 10_000_000)
        await eventually(
            lambda: all(layer.bitrate_bps > 0 for layer in camera.layers), 8, "every layer"
        )
        (video,) = [t for t in slow.tracks if t["kind"] == "video"]
        received = tap(slow, video["mid"])
        await eventually(lambda: len(received) > 20, 5, "video")
        assert slow_slot.layer == "f"

        told = time.monotonic()
        await say_link(slow, slow_slot, 200_000)
        await eventually(lambda: slow_slot.layer == "q", 2.0, "the quarter layer")
        switched_in = time.monotonic() - told
        # What each page is told of its quality ("Low bandwidth: reduced quality").
        (slow_video,) = conference.server.quality("conn-slow")
        assert slow_video == {"mid": video["mid"], "layer": 1, "layers": 3, "reduced": True}
        (fast_video,) = conference.server.quality("conn-fast")
        assert fast_video["layer"] == 3 and not fast_video["reduced"]
        await asyncio.sleep(1.0)
        shown = []
        while not slow.frames.empty():
            shown.append(slow.frames.get_nowait()[0])
        around = [t for t in shown if t > told - 0.5]
        gaps = [b - a for a, b in zip(around, around[1:], strict=False)]
        assert around and around[-1] > told + 0.8 and max(gaps) < 0.5, gaps
        assert await frame_sizes(slow, 1.5) == {(160, 120)}

        steps: list[tuple[float, str | None]] = []

        async def plenty() -> None:
            while True:
                await say_link(slow, slow_slot, 5_000_000)
                if not steps or steps[-1][1] != slow_slot.layer:
                    steps.append((time.monotonic(), slow_slot.layer))
                await asyncio.sleep(0.25)

        telling = asyncio.ensure_future(plenty())
        try:
            await eventually(lambda: slow_slot.layer == "f", 12, "the full layer again")
        finally:
            telling.cancel()
        steps.append((time.monotonic(), slow_slot.layer))
        changes = [step for n, step in enumerate(steps) if n == 0 or steps[n - 1][1] != step[1]]
        assert [layer for _, layer in changes] == ["q", "h", "f"], steps
        assert changes[2][0] - changes[1][0] >= 2.5  # each step up waited

        sequence = [p.sequence_number for p in received]
        jumps = [(b - a) & 0xFFFF for a, b in zip(sequence, sequence[1:], strict=False)]
        assert set(jumps) == {1}, sorted(set(jumps))
        stamps = [p.timestamp for p in received]
        assert all((b - a) & 0xFFFFFFFF < 1 << 31 for a, b in zip(stamps, stamps[1:], strict=False))
        # VP8 picture ids go on too: the same for a frame's packets, one more for the next frame
        # (each layer numbers its own; a browser drops frames whose id is behind the last).
        descriptors = [vp8_descriptor(p.payload) for p in received]
        pictures = [d[1] for d in descriptors if d is not None]
        assert len(pictures) == len(received)
        moves = [(b - a) & 0x7FFF for a, b in zip(pictures, pictures[1:], strict=False)]
        assert set(moves) == {0, 1}, sorted(set(moves))
        assert fast_slot.layer == "f"
        assert switched_in < 2.0
    finally:
        await publisher.close()


async def watched_live(
    conference: Conference, publisher: SimulcastPublisher
) -> tuple[PublishedTrack, Viewer, ViewerSlot]:
    """The speaker live with three layers, all arriving for a while, and an attendee watching
    whose link carries plenty: the camera, the attendee and the attendee's video slot."""
    await publisher.publish(conference, "s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    camera = camera_of(conference)
    viewer = await conference.watch("s1", "attendee")
    slot = video_slot(conference, viewer)
    await say_link_until_heard(viewer, slot, 10_000_000)
    await eventually(lambda: all(layer.bitrate_bps > 0 for layer in camera.layers), 8, "layers")
    await asyncio.sleep(1.0)
    return camera, viewer, slot


async def test_a_second_video_on_stage_takes_its_share_of_the_viewers_link(
    conference: Conference,
) -> None:
    """A viewer's link carries the first speaker's full layer with a little room to spare. When
    a second speaker (sending one layer) comes on stage, the viewer's estimate has to cover both
    videos: the first speaker's camera steps down to a lower layer rather than both freezing."""
    publisher = SimulcastPublisher()
    try:
        camera, viewer, slot = await watched_live(conference, publisher)
        top = camera.layers[-1].smoothed_bps
        link = int((top * 1.3 + 100_000) / 0.85)  # the top layer fits, its rate varying
        await say_link(viewer, slot, link)
        await asyncio.sleep(1.5)
        assert slot.layer == "f"

        await conference.publish("s1", "second")
        await conference.server.set_live(session_id="s1", person_id="second", live=True)
        await conference.settle()
        peer = next(p for p in conference.server._peers.values() if isinstance(p, ViewingPeer))
        second = next(s for s in peer.slots if s.kind == "video" and s.key == ("second", "camera"))
        await eventually(
            lambda: second.source is not None and second.source.bitrate_bps > 700_000,
            8,
            "second video",
        )
        await say_link(viewer, slot, link)
        await eventually(
            lambda: slot.layer in ("q", "h"), 2.0, "a lower layer for the first camera"
        )
    finally:
        await publisher.close()


async def test_a_viewer_whose_browser_estimates_too_little_is_probed_then_steps_up(
    conference: Conference,
) -> None:
    """A browser's estimate cannot grow much past what it receives: a viewer given the half
    layer is never estimated to carry the full one. So the server probes: it pads the viewer's
    stream, on its retransmission stream, up to a quarter over the estimate. The padding is
    copies of the packets just sent (the viewer's stream itself is untouched), and stops once
    the browser's estimate has followed; the viewer then steps up."""
    publisher = SimulcastPublisher()
    try:
        camera, viewer, slot = await watched_live(conference, publisher)
        half, full = camera.layers[1].smoothed_bps, camera.layers[2].smoothed_bps
        link = int(full * 0.9)  # the half layer fits, the full one not quite
        assert half < link * 0.85
        await say_link(viewer, slot, link)
        await eventually(lambda: slot.layer == "h", 3, "the half layer")
        (video,) = [t for t in viewer.tracks if t["kind"] == "video"]
        received = tap(viewer, video["mid"])
        rtx_ssrc = slot.sender._rtx_ssrc
        padding = [p for p in received if p.ssrc == rtx_ssrc]

        def padded() -> list[int]:
            padding[:] = [p for p in received if p.ssrc == rtx_ssrc]
            return [len(p.payload) for p in padding]

        # Once it has been on the half layer a while, the probe begins.
        await eventually(lambda: len(padded()) > 20, 8, "padding on the retransmission stream")
        assert slot.link.probing(time.monotonic())
        assert slot.link.probe_bps == pytest.approx(link * 1.25, rel=0.01)  # as REMB carries it
        media = [p for p in received if p.ssrc != rtx_ssrc]
        sent = {p.sequence_number: p.payload for p in media}
        for packet in padding:  # each a copy of a packet sent: its sequence number, its payload
            original = int.from_bytes(packet.payload[:2], "big")
            assert packet.payload[2:] == sent.get(original, packet.payload[2:])
        assert sum(int.from_bytes(p.payload[:2], "big") in sent for p in padding) > 10
        # About what the probe asked for, beyond the half layer's own rate.
        started = time.monotonic()
        before = sum(padded())
        await asyncio.sleep(1.0)
        padding_bps = (sum(padded()) - before) * 8 / (time.monotonic() - started)
        expected = slot.link.probe_bps - camera.layers[1].smoothed_bps
        assert 0.4 * expected < padding_bps < 1.6 * expected, (padding_bps, expected)
        # The browser's estimate follows: the probe ends, the padding stops, the viewer steps up.
        await say_link(viewer, slot, 3_000_000)
        await eventually(lambda: not slot.link.probing(time.monotonic()), 2, "the probe over")
        assert slot.link.counts.succeeded >= 1
        await asyncio.sleep(0.3)
        count = len(padded())
        await eventually(lambda: slot.layer == "f", 6, "the full layer")
        assert len(padded()) - count < 5
        sequence = [p.sequence_number for p in media]
        assert {(b - a) & 0xFFFF for a, b in zip(sequence, sequence[1:], strict=False)} == {1}
    finally:
        await publisher.close()


async def test_layers_nobody_needs_are_paused_at_the_speaker_and_resumed_when_needed(
    conference: Conference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dynacast: with every viewer on the full layer, the speaker's page is told to send only the
    lowest and the full one (the half layer costs its uplink for nobody; the lowest is where any
    viewer falls, the full one is recorded). When a viewer on a slow link arrives, on the
    lowest layer, the half layer (its next step up) is asked for again at once."""
    monkeypatch.setattr(forwarder, "DYNACAST_PAUSE_AFTER_S", 1.5)
    publisher = SimulcastPublisher()
    try:
        camera, viewer, slot = await watched_live(conference, publisher)
        assert slot.layer == "f"

        def told() -> list[list[str]]:
            return [
                message["active"]
                for connection, message in conference.messages
                if connection == "conn-speaker" and message["type"] == "media.layers"
            ]

        await eventually(lambda: told() == [["q", "f"]], 5, "the half layer paused")
        (message,) = [m for c, m in conference.messages if m["type"] == "media.layers"]
        assert message["label"] == "camera" and message["peer_id"] == camera_peer(conference).id

        slow = await conference.watch("s1", "slow")
        slow_slot = video_slot(conference, slow)
        await say_link_until_heard(slow, slow_slot, 200_000)
        await eventually(lambda: slow_slot.layer == "q", 3, "the slow viewer on the lowest layer")
        await eventually(lambda: told()[-1:] == [["q", "h", "f"]], 2.5, "the half layer again")
        assert slot.layer == "f"
    finally:
        await publisher.close()


def camera_peer(conference: Conference) -> PublishingPeer:
    (peer,) = [p for p in conference.server._peers.values() if isinstance(p, PublishingPeer)]
    return peer
