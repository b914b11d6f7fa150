"""The aiortc internals the forwarder depends on, and the pure RTP rewriting it does."""

from __future__ import annotations

import pathlib
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender
from media_clients import no_rtcp

from streaming import MediaServer, aiortc_hooks, internals_check
from streaming.forwarder import ForwardedPacket, ViewerSlot
from streaming.payloads import (
    h264_keyframe_start,
    vp8_descriptor,
    vp8_frame_size,
    vp8_keyframe_start,
    vp8_temporal_id,
)


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget that this process's aiortc passed the behavioural check, so it runs again."""
    monkeypatch.setattr(internals_check, "_behaviour_checked", False)


def test_the_hooks_pass_real_packets_between_two_peers(unchecked: None) -> None:
    """The start-up check: a client and a hooked ICE-lite server connect; the server's receiver
    hands packets to the hook, RtpOutput sends them back, the client decodes them and NACKs the
    one left out, a PLI reaches the publisher's hooked sender, Sender Report figures are what
    aiortc reports, and the C fan-out sends with the names Python gives it."""
    internals_check.check_internals()
    assert internals_check._behaviour_checked


def test_a_changed_aiortc_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, unchecked: None
) -> None:
    async def handle_rtp_packet(self: Any, packet: Any, arrival_time_ms: int) -> None:
        """An imagined future aiortc that decodes without a jitter buffer."""

    async def no_keyframes(self: Any, packet: Any) -> None:
        """An imagined future aiortc that handles PLI some other way."""

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_rtp_packet)
    monkeypatch.setattr(RTCRtpSender, "_handle_rtcp_packet", no_keyframes)
    with pytest.raises(aiortc_hooks.AiortcInternalsChanged) as changed:
        internals_check.check_internals()
    assert "hook_receiver" in str(changed.value)
    # The source-text diagnostics say why, in the log.
    logged = caplog.text
    assert "__jitter_buffer" in logged and "_send_keyframe" in logged

    async def send(connection_id: str, message: dict[str, Any]) -> None: ...

    with pytest.raises(aiortc_hooks.AiortcInternalsChanged):
        MediaServer(ice_servers=[], recordings_dir=pathlib.Path("unused"), send=send)


def test_a_name_the_c_fan_out_is_given_is_checked_by_what_it_does(
    monkeypatch: pytest.MonkeyPatch, unchecked: None
) -> None:
    """streaming/_fanout.c spells no aiortc attribute: it writes the Sender Report figures under
    the names Python passes, and the check finds out when one of them is not aiortc's."""
    names = list(aiortc_hooks.SENDER_ATTRIBUTES)
    names[4] = "_RTCRtpSender__packets"  # as if aiortc had renamed its packet count
    monkeypatch.setattr(aiortc_hooks, "SENDER_ATTRIBUTES", tuple(names))
    with pytest.raises(aiortc_hooks.AiortcInternalsChanged) as changed:
        internals_check.check_internals()
    assert "Sender Report figures" in str(changed.value)


def test_an_ice_lite_dependency_that_is_gone_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """What streaming/ice_lite.py relies on in aioice is listed and looked up on a real
    Connection."""
    monkeypatch.setattr(
        aiortc_hooks, "ICE_LITE_CONNECTION_ATTRIBUTES", ("_nominated", "_check_list_gone")
    )
    assert aiortc_hooks.missing_attributes() == ["aioice.Connection._check_list_gone"]


VP8_KEY = bytes([0x90, 0x80, 0x81, 0x23, 0x50, 0x00, 0x00, 0x9D, 0x01, 0x2A])
VP8_DELTA = bytes([0x90, 0x80, 0x81, 0x24, 0x51, 0x00, 0x00])
VP8_CONTINUATION = bytes([0x80, 0x80, 0x81, 0x23, 0x50])


def test_keyframes_are_recognised_from_the_payload_alone() -> None:
    assert vp8_keyframe_start(VP8_KEY)
    assert not vp8_keyframe_start(VP8_DELTA)
    assert not vp8_keyframe_start(VP8_CONTINUATION)
    assert not vp8_keyframe_start(b"")
    assert h264_keyframe_start(bytes([0x67, 0x42]))  # SPS
    assert h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A start of an IDR slice
    assert not h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A middle
    assert h264_keyframe_start(bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]))
    assert not h264_keyframe_start(bytes([0x41, 0x9A]))
    frame = bytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01])
    assert vp8_frame_size(frame) == (640, 480)


class FakeTrack:
    """Stands in for a PublishedTrack: one codec, no history."""

    def __init__(self) -> None:
        self.slots: list[ViewerSlot] = []
        self.keyframe_requests = 0
        self.rid = None
        self.main = self
        self.layers = [self]
        self.last_vp8 = None

    def codec(self, payload_type: int) -> Any:
        return SimpleNamespace(mimeType="video/VP8", clockRate=90000, parameters={})

    def add_slot(self, slot: ViewerSlot) -> None:
        self.slots.append(slot)

    def remove_slot(self, slot: ViewerSlot) -> None:
        self.slots.remove(slot)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def history(self, sequence_number: int) -> None:
        return None


def stand_in_slot(
    monkeypatch: pytest.MonkeyPatch, sent: list[bytes], *, mid_extension: bool
) -> tuple[ViewerSlot, Any]:
    """A video slot reserved for a speaker's camera over a stand-in sender, its packets going to
    `sent` (payload type 120, SSRC 0x11223344, mid "3" in an extension if `mid_extension`)."""
    monkeypatch.setattr(aiortc_hooks, "sendable", lambda sender: True)
    monkeypatch.setattr(
        aiortc_hooks.RtpOutput, "send", lambda self, data: sent.append(data) or True
    )
    monkeypatch.setattr(aiortc_hooks, "note_sent", lambda *args: None)
    monkeypatch.setattr(aiortc_hooks, "compatible_payload_type", lambda transceiver, codec: 120)
    monkeypatch.setattr(aiortc_hooks, "sender_rtt", lambda sender: 0.05)
    mid = SimpleNamespace(uri="urn:ietf:params:rtp-hdrext:sdes:mid", id=1)
    transceiver = SimpleNamespace(
        kind="video",
        mid="3",
        direction="sendonly",
        sender=SimpleNamespace(
            _ssrc=0x11223344,
            _track_id="",
            _stream_id="",
            _handle_rtcp_packet=no_rtcp,
            _send_rtcp=no_rtcp,
        ),
        _headerExtensions=[mid] if mid_extension else [],
    )
    slot = ViewerSlot(transceiver)  # type: ignore[arg-type]
    slot.reserve(("speaker", "camera"), "t", "s")
    return slot, transceiver


def packet(seq: int, ts: int, keyframe: bool = False) -> ForwardedPacket:
    return ForwardedPacket(seq, ts, 1, 96, b"\x10\x00", None, None, keyframe, 0)


def test_a_slot_keeps_numbering_continuous_when_its_source_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[bytes] = []
    slot, transceiver = stand_in_slot(monkeypatch, sent, mid_extension=True)
    first, second = FakeTrack(), FakeTrack()
    slot.set_source(first)  # type: ignore[arg-type]
    assert first.slots == []  # not before the viewer has answered
    slot.mark_negotiated()
    assert first.slots == [slot] and first.keyframe_requests == 1

    slot.forward(packet(100, 5000))  # no keyframe yet: dropped
    assert sent == []
    for i in range(3):
        slot.forward(packet(101 + i, 6000 + 3000 * i, keyframe=(i == 0)))
    slot.set_source(second)  # type: ignore[arg-type]
    slot.forward(packet(60000, 1_000_000))  # waits for the new source's keyframe
    slot.forward(packet(60001, 1_003_000, keyframe=True))
    slot.forward(packet(60002, 1_006_000))

    assert len(sent) == 5
    numbers = [int.from_bytes(d[2:4], "big") for d in sent]
    stamps = [int.from_bytes(d[4:8], "big") for d in sent]
    assert [(n - numbers[0]) & 0xFFFF for n in numbers] == [0, 1, 2, 3, 4]
    assert all(0 < (b - a) & 0xFFFFFFFF < 90000 for a, b in zip(stamps, stamps[1:], strict=False))
    assert all(d[1] & 0x7F == 120 and d[8:12] == bytes.fromhex("11223344") for d in sent)
    assert sent[0][12:16] == bytes([0xBE, 0xDE, 0x00, 0x01]) and sent[0][16:18] == b"\x10" + b"3"

    slot.release()
    assert second.slots == [] and slot.key is None and transceiver.direction == "inactive"


def vp8(picture_id: int, tl0: int, tid: int, *, start: bool) -> bytes:
    """A VP8 payload whose descriptor has a 15-bit picture id, TL0PICIDX and a temporal layer."""
    return (
        bytes((0x90 if start else 0x80, 0xE0, 0x80 | picture_id >> 8, picture_id & 0xFF, tl0))
        + bytes((tid << 6,))
        + (b"\x00" if start and tid == 0 and picture_id == 7000 else b"\x01")  # a keyframe first
        + bytes(20)
    )


def test_a_slot_keeping_only_the_base_temporal_layer_stays_one_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fast step down: the viewer gets only the base temporal layer of its current layer (a
    quarter of the frames) until the lower layer's keyframe. The frames skipped leave no gap in
    its sequence numbers or picture ids (its browser would wait for them, or drop the frames
    after), and a NACK for a packet sent before the skips still gets that packet again."""
    sent: list[bytes] = []
    slot, _ = stand_in_slot(monkeypatch, sent, mid_extension=False)
    source = FakeTrack()
    slot.set_source(source)  # type: ignore[arg-type]
    slot.mark_negotiated()
    history: dict[int, ForwardedPacket] = {}
    source.history = history.get  # type: ignore[method-assign]
    source.bitrate_bps = 500_000  # type: ignore[attr-defined]

    # Sixteen frames of two packets each, temporal layers 0, 2, 1, 2, ...; a quarter in, the
    # slot keeps only the base layer.
    sequence = 1000
    for frame in range(16):
        tid = (0, 2, 1, 2)[frame % 4]
        tl0 = 50 + frame // 4
        if frame == 4:
            slot.keep_temporal(0)
        for part in range(2):
            payload = vp8(7000 + frame, tl0, tid, start=part == 0)
            packet = ForwardedPacket(
                sequence, 3000 * frame, part, 96, payload, None, None, frame == 0 and part == 0,
                0, vp8_descriptor(payload), vp8_temporal_id(payload),
            )  # fmt: skip
            history[sequence] = packet
            slot.forward(packet)
            sequence += 1

    assert len(sent) == 8 + 3 * 2  # the first four frames, then the base layer's three
    numbers = [int.from_bytes(d[2:4], "big") for d in sent]
    assert [(n - numbers[0]) & 0xFFFF for n in numbers] == list(range(len(sent)))
    pictures = [vp8_descriptor(d[12:])[1] for d in sent]  # type: ignore[index]
    assert pictures == [p for p in range(7000, 7007) for _ in range(2)]
    assert [d[12 + 5] >> 6 for d in sent[8:]] == [0] * 6  # the base layer only
    assert [d[12 + 4] for d in sent] == [50] * 8 + [51, 51, 52, 52, 53, 53]  # TL0PICIDX as is

    # A NACK for the fourth packet (sent before anything was skipped): that packet, as it was.
    before = len(sent)
    slot._on_nack(numbers[3])
    assert sent[before:] == [sent[3]]
    # And one for the last (after eighteen skipped): that one.
    slot._on_nack(numbers[-1])
    assert sent[before + 1 :] == [sent[before - 1]]

    slot.keep_temporal(None)  # all layers again: every frame, numbering still one stream
    payload = vp8(7016, 54, 2, start=True)
    slot.forward(ForwardedPacket(sequence, 48000, 1, 96, payload, None, None, False, 0,
                                 vp8_descriptor(payload), vp8_temporal_id(payload)))  # fmt: skip
    assert int.from_bytes(sent[-1][2:4], "big") == (numbers[-1] + 1) & 0xFFFF
    assert vp8_descriptor(sent[-1][12:])[1] == 7007  # type: ignore[index]
