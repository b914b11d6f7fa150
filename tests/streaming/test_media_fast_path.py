"""The forwarder's per-packet fast paths: what a viewer receives is the publisher's packet with only
the expected header fields rewritten, from the C fan-out and from the Python path, on asyncio's
loop and on uvloop (production's); the two paths send the same bytes; and the cached socket /
SRTP session follow the viewer's transport when it changes."""

from __future__ import annotations

import asyncio
import gc
import os
import pathlib
import socket
import sys
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
import uvloop
from aiortc.rtcdtlstransport import State
from media_clients import Conference, StandInSource, Viewer, eventually, no_rtcp, tap
from pylibsrtp import Policy, Session

from streaming import aiortc_hooks, forwarder, munger
from streaming.forwarder import ForwardedPacket, NativeViewers, ViewerSlot, fan_out
from streaming.payloads import vp8_descriptor
from streaming.peers import ViewingPeer


async def check_viewers_get_the_payload_with_only_the_header_rewritten(
    conference: Conference, *, bypasses_transport: bool, native: bool
) -> None:
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    viewers = [await conference.watch("s1", f"attendee{i}") for i in range(2)]
    await eventually(
        lambda: all(v.counter("video") and v.counter("video").frames > 5 for v in viewers),
        6,
        "first frames",
    )
    peers = [p for p in conference.server._peers.values() if isinstance(p, ViewingPeer)]
    for viewer in viewers:
        taps = {t["kind"]: (t["mid"], tap(viewer, t["mid"])) for t in viewer.tracks}
        await eventually(
            lambda taps=taps: all(len(r) >= 40 for _, r in taps.values()), 5, "packets"
        )
        (peer,) = [p for p in peers if p.person_id == viewer_person(conference, viewer)]
        for kind, (mid, received) in taps.items():
            (slot,) = [s for s in peer.slots if s.source is not None and s.kind == kind]
            track = slot.source
            assert slot.native is native  # steady slots are sent to from C when it is built
            client_pt = {
                c.payloadType
                for t in viewer.pc.getTransceivers()
                if t.mid == mid
                for c in t._codecs
                if c.mimeType.lower() == f"{kind}/{track.codec_name}".lower()
            }
            checked = 0
            for packet in received[-40:]:
                source = track.history(slot.munger.source_sequence_number(packet.sequence_number))
                assert source is not None, "a packet the publisher never sent"
                assert packet.payload == source.payload  # the payload, byte for byte
                assert packet.marker == source.marker
                assert packet.ssrc == slot.ssrc == slot.sender._ssrc
                assert packet.payload_type in client_pt and packet.payload_type == slot.payload_type
                assert (packet.timestamp - source.timestamp) & 0xFFFFFFFF == slot.munger.ts_offset
                assert packet.extensions.mid == mid
                if kind == "video":
                    assert packet.extensions.abs_send_time == int.from_bytes(
                        source.abs_send_time, "big"
                    )
                checked += 1
            assert checked == 40
            # asyncio's transport is bypassed for its socket; uvloop's transport is used as is.
            writes_socket = isinstance(
                getattr(slot._output._sendto, "__self__", None), socket.socket
            )
            assert writes_socket is bypasses_transport
            # Sender Reports: the counters follow what was sent (updated every 32 packets).
            count = slot.sender._RTCRtpSender__packet_count
            assert 0 < count <= slot.packets_sent and count % 32 == 1
            assert slot.sender._RTCRtpSender__ntp_timestamp > 0


def viewer_person(conference: Conference, viewer: Viewer) -> str:
    (connection,) = [c for c, v in conference.viewers.items() if v is viewer]
    return connection.removeprefix("conn-")


@pytest.fixture(params=["c", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each story runs on the C fan-out and again on the Python path (as without a C compiler)."""
    if request.param == "python":
        monkeypatch.setattr(forwarder, "_fanout", None)
    return str(request.param)


async def test_viewers_get_the_payload_with_only_the_header_rewritten(
    conference: Conference, path: str
) -> None:
    await check_viewers_get_the_payload_with_only_the_header_rewritten(
        conference, bypasses_transport=True, native=path == "c"
    )


def test_the_same_on_uvloop(tmp_path: pathlib.Path, path: str) -> None:
    """Production runs on uvloop (uvicorn's default): its UDP transport has no `_sock`."""

    async def main() -> None:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        conference = Conference(tmp_path / "recordings")
        try:
            await check_viewers_get_the_payload_with_only_the_header_rewritten(
                conference, bypasses_transport=False, native=path == "c"
            )
        finally:
            await conference.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_the_c_fan_out_is_built() -> None:
    """`make test` installs with a C compiler, so the C fan-out must be there (setup.py builds it
    optionally: without one, Dais runs on the Python path)."""
    assert forwarder._fanout is not None, "streaming/_fanout.c was not built"
    assert aiortc_hooks.srtp_protect_address() is not None
    assert NativeViewers.create() is not None


def test_the_internals_the_fast_path_uses_are_named_when_their_source_moves(
    monkeypatch: Any,
) -> None:
    """Source text is a diagnostic only (the behavioural check decides): a moved `_sock` or
    pylibsrtp scratch buffer is named, so a failed check, or a slower fallback, has its cause."""
    import asyncio.selector_events

    import pylibsrtp

    def moved_init(self: Any, *args: Any, **kwargs: Any) -> None:
        """An imagined future version that keeps its state elsewhere."""

    assert aiortc_hooks.source_diagnostics() == []
    monkeypatch.setattr(asyncio.selector_events._SelectorTransport, "__init__", moved_init)
    monkeypatch.setattr(pylibsrtp.Session, "__init__", moved_init)
    problems = "; ".join(aiortc_hooks.source_diagnostics())
    assert "_sock" in problems and "pylibsrtp.Session" in problems


async def test_without_pylibsrtps_binding_viewers_are_served_by_the_python_path(
    tmp_path: pathlib.Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """pylibsrtp's private binding is imported lazily: when it cannot be loaded (here, as if the
    module were gone), `import streaming` and the server's start still work, the C fan-out is
    off with the usual warning, and viewers get the stream through the public Session.protect."""
    monkeypatch.setitem(sys.modules, "pylibsrtp._binding", None)  # importing it now fails
    assert aiortc_hooks.load_srtp_binding() is None
    assert aiortc_hooks.srtp_protect_address() is None and NativeViewers.create() is None
    conference = Conference(tmp_path / "recordings")
    try:
        assert "C fan-out (streaming/_fanout.c) is not available" in caplog.text
        await conference.publish("s1", "speaker")
        await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
        viewer = await conference.watch("s1", "attendee")
        await eventually(
            lambda: viewer.counter("video") and viewer.counter("video").frames > 5,
            8,
            "frames on the Python path",
        )
        peers = [p for p in conference.server._peers.values() if isinstance(p, ViewingPeer)]
        slots = [s for p in peers for s in p.slots if s.source is not None]
        assert slots and not any(slot.native for slot in slots)
        assert all(slot.native_parameters() is None for slot in slots)
    finally:
        await conference.close()


# --- RtpOutput against stand-ins for aiortc's transport objects ---------------------------------


def srtp_pair() -> tuple[Session, Session]:
    key = os.urandom(44)
    profile = Policy.SRTP_PROFILE_AEAD_AES_256_GCM
    tx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
    rx = Session(policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))
    return tx, rx


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    return sock


def rtp(seq: int) -> bytes:
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(4) + b"\x00\x00\x12\x34" + b"x" * 50


def test_rtp_output_follows_the_nominated_pair_and_the_transport_kind() -> None:
    tx, rx = srtp_pair()
    out_socket, first, second = udp_socket(), udp_socket(), udp_socket()
    pair = SimpleNamespace(
        protocol=SimpleNamespace(transport=SimpleNamespace(_sock=out_socket)),
        remote_addr=first.getsockname(),
    )
    nominated = {1: pair}
    dtls = SimpleNamespace(
        _state=State.CONNECTED,
        _transport=SimpleNamespace(_connection=SimpleNamespace(_nominated=nominated)),
        _tx_srtp=tx,
    )
    output = aiortc_hooks.RtpOutput(SimpleNamespace(_RTCRtpSender__transport=dtls))  # type: ignore[arg-type]
    try:
        assert output.send(rtp(1))
        assert rx.unprotect(first.recv(2048)) == rtp(1)

        # The pair changes (another candidate nominated): the next packet goes to the new address.
        nominated[1] = SimpleNamespace(protocol=pair.protocol, remote_addr=second.getsockname())
        assert output.send(rtp(2))
        assert rx.unprotect(second.recv(2048)) == rtp(2)

        # A loop whose transport has no socket to bypass (uvloop): its own sendto is used.
        sent: list[tuple[bytes, Any]] = []
        transport = SimpleNamespace(sendto=lambda data, address: sent.append((data, address)))
        nominated[1] = SimpleNamespace(
            protocol=SimpleNamespace(transport=transport), remote_addr=("192.0.2.1", 9)
        )
        batch: list[Any] = []
        assert output.protect_into(rtp(3), batch)
        ((sendto, data, address),) = batch
        sendto(data, address)
        assert sent == [(data, ("192.0.2.1", 9))] and rx.unprotect(data) == rtp(3)

        # Not connected (any more): nothing is sent; a new DTLS transport is picked up.
        dtls._state = State.CLOSED
        assert not output.send(rtp(4)) and not output.protect_into(rtp(4), [])
        dtls._state = State.CONNECTED
        assert output.send(rtp(5)) and len(sent) == 2
        assert not output.send(b"x" * 2000)  # longer than SRTP's buffer: dropped, not raised
        nominated.clear()
        assert not output.send(rtp(6))
    finally:
        for sock in (out_socket, first, second):
            sock.close()


def test_one_template_per_packet_serves_every_viewer(monkeypatch: Any) -> None:
    """Slots with the same extension layout share one template; each rewrites its own 12 bytes."""
    sent: list[bytes] = []
    monkeypatch.setattr(aiortc_hooks, "sendable", lambda sender: True)
    monkeypatch.setattr(aiortc_hooks, "note_sent", lambda *args: None)
    monkeypatch.setattr(aiortc_hooks, "compatible_payload_type", lambda transceiver, codec: 100)
    monkeypatch.setattr(
        aiortc_hooks.RtpOutput,
        "protect_into",
        lambda self, data, batch: batch.append((lambda d, a: sent.append(d), data, None)) or True,
    )

    slots = []
    for index, mid in enumerate(["1", "1", "7"]):
        transceiver = SimpleNamespace(
            kind="video",
            mid=mid,
            direction="sendonly",
            sender=SimpleNamespace(
                _ssrc=0x1000 + index,
                _track_id="",
                _stream_id="",
                _handle_rtcp_packet=no_rtcp,
                _send_rtcp=no_rtcp,
            ),
            _headerExtensions=[
                SimpleNamespace(uri="urn:ietf:params:rtp-hdrext:sdes:mid", id=1),
                SimpleNamespace(
                    uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", id=3
                ),
            ],
        )
        slot = ViewerSlot(transceiver)  # type: ignore[arg-type]
        slot.reserve(("speaker", "camera"), "t", "s")
        slot.set_source(StandInSource(None))  # type: ignore[arg-type]
        slot.mark_negotiated()
        slots.append(slot)

    payload = os.urandom(300)
    packet = ForwardedPacket(500, 90000, 1, 96, payload, b"\x0a\x0b\x0c", None, True, 0)
    fan_out(slots, packet)
    assert len(sent) == 3 and len(packet.templates) == 2  # two layouts: mid "1" and mid "7"
    for slot, data in zip(slots, sent, strict=True):
        assert data[0] == 0x90 and data[1] == 0x80 | 100  # extension bit; marker, viewer's PT
        assert int.from_bytes(data[2:4], "big") == (500 + slot.munger.seq_offset) & 0xFFFF
        assert int.from_bytes(data[4:8], "big") == (90000 + slot.munger.ts_offset) & 0xFFFFFFFF
        assert int.from_bytes(data[8:12], "big") == slot.ssrc
        mid = slot.transceiver.mid.encode()
        # One-byte extensions: abs-send-time (id 3) as received, then the slot's own mid (id 1).
        assert data[12:16] == b"\xbe\xde\x00\x02"
        assert data[16:24] == b"\x32\x0a\x0b\x0c" + b"\x10" + mid + b"\x00\x00"
        assert data[24:] == payload


# --- the C fan-out against stand-ins: the same bytes as the Python path, and its safety checks ---


def stand_in_slot(
    source: StandInSource, tx: Session, out_socket: socket.socket, to: Any, ssrc: int
) -> tuple[ViewerSlot, SimpleNamespace, dict[int, Any]]:
    """A steady viewer slot over stand-ins for aiortc's sender, DTLS and ICE objects."""
    transport = SimpleNamespace(_sock=out_socket, get_extra_info=lambda name: out_socket)
    nominated = {1: SimpleNamespace(protocol=SimpleNamespace(transport=transport), remote_addr=to)}
    dtls = SimpleNamespace(
        _state=State.CONNECTED,
        _transport=SimpleNamespace(_connection=SimpleNamespace(_nominated=nominated)),
        _tx_srtp=tx,
    )
    transceiver = SimpleNamespace(
        kind="video",
        mid="2",
        direction="sendonly",
        sender=SimpleNamespace(
            _ssrc=ssrc,
            _track_id="",
            _stream_id="",
            _RTCRtpSender__transport=dtls,
            _handle_rtcp_packet=no_rtcp,
            _send_rtcp=no_rtcp,
        ),
        _codecs=[SimpleNamespace(mimeType="video/VP8", clockRate=90000, payloadType=100)],
        _headerExtensions=[
            SimpleNamespace(uri="urn:ietf:params:rtp-hdrext:sdes:mid", id=1),
            SimpleNamespace(uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", id=3),
        ],
    )
    slot = ViewerSlot(transceiver)  # type: ignore[arg-type]
    slot.reserve(("speaker", "camera"), "t", "s")
    slot.set_source(source)  # type: ignore[arg-type]
    slot.mark_negotiated()
    return slot, dtls, nominated


def packet_number(n: int, payload: bytes) -> ForwardedPacket:
    return ForwardedPacket(
        (65530 + n) & 0xFFFF, (n * 3000) & 0xFFFFFFFF, n & 1, 96, payload, b"\x01\x02\x03",
        None, True, 1000 + n,
    )  # fmt: skip


def forward(packet: ForwardedPacket, slots: list[ViewerSlot], native: NativeViewers) -> Any:
    """What PublishedTrack does with a packet: the C fan-out, then the Python path."""
    dropped = native.send(packet) if native.slots else None
    python_path = [s for s in slots if not s.native]
    if python_path:
        fan_out(python_path, packet)
    return dropped


def test_the_c_fan_out_sends_the_bytes_the_python_path_sends(monkeypatch: Any) -> None:
    """Two viewers with the same SRTP key and SSRC, one on each path, receive identical packets
    (SRTP is deterministic for a key, SSRC and index): the C path's header rewrite, extension
    layout, sequence wrap and encryption are the Python path's, byte for byte."""
    monkeypatch.setattr(munger.random, "randrange", lambda a, b: 4242)  # the same offsets
    key = os.urandom(44)
    profile = Policy.SRTP_PROFILE_AEAD_AES_256_GCM

    def tx() -> Session:
        return Session(
            policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        )

    out_socket, to_c, to_python = udp_socket(), udp_socket(), udp_socket()
    native = NativeViewers.create()
    assert native is not None
    c_slot, _, _ = stand_in_slot(StandInSource(native), tx(), out_socket, to_c.getsockname(), 7)
    py_slot, _, _ = stand_in_slot(StandInSource(None), tx(), out_socket, to_python.getsockname(), 7)
    try:
        payloads = [os.urandom(size) for size in (40, 700, 1100, 1300)]
        for n in range(12):  # crosses the sequence number wrap at 65535
            forward(packet_number(n, payloads[n % 4]), [c_slot, py_slot], native)
            assert to_c.recv(2048) == to_python.recv(2048)
            assert c_slot.native and not py_slot.native  # C from the second packet on
        assert native.slots == [c_slot]
        assert c_slot.counters() == py_slot.counters()
        assert c_slot.packets_sent == 12 and c_slot.octets_sent == sum(
            len(payloads[n % 4]) for n in range(12)
        )
        # Sender Reports: both paths leave the same figures on the sender (1st packet, 33rd, ...).
        for name in ("packet_count", "octet_count", "rtp_timestamp", "ntp_timestamp"):
            attribute = f"_RTCRtpSender__{name}"
            assert getattr(c_slot.sender, attribute) == getattr(py_slot.sender, attribute)
        assert c_slot.sender._RTCRtpSender__packet_count == 1
        # Too long for SRTP's buffer: dropped on both paths, not raised.
        forward(packet_number(12, os.urandom(1400)), [c_slot, py_slot], native)
        to_c.settimeout(0.2)
        with pytest.raises(TimeoutError):
            to_c.recv(2048)
    finally:
        for sock in (out_socket, to_c, to_python):
            sock.close()


def test_both_paths_continue_vp8_picture_ids_across_a_switch_alike(monkeypatch: Any) -> None:
    """A viewer that switched layers gets the new layer's VP8 picture ids and TL0PICIDX moved on
    from where the old one left off (a browser drops frames whose picture id is behind), on the
    C path exactly as on the Python path: 15-bit ids wrapping, 7-bit ids, and payloads with
    none."""
    monkeypatch.setattr(munger.random, "randrange", lambda a, b: 4242)
    key = os.urandom(44)
    profile = Policy.SRTP_PROFILE_AEAD_AES_256_GCM

    def tx() -> Session:
        return Session(
            policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        )

    def vp8(n: int) -> bytes:
        body = os.urandom(300)
        if n % 3 == 0:  # X, S; I and L; a 15-bit picture id near the wrap; TL0PICIDX
            picture_id = (32760 + n) & 0x7FFF
            return bytes((0x90, 0xC0, 0x80 | picture_id >> 8, picture_id & 0xFF, n)) + body
        if n % 3 == 1:  # a 7-bit picture id, no TL0PICIDX
            return bytes((0x90, 0x80, (120 + n) & 0x7F)) + body
        return bytes((0x10,)) + body  # no extension: nothing to rewrite

    out_socket, to_c, to_python = udp_socket(), udp_socket(), udp_socket()
    native = NativeViewers.create()
    assert native is not None
    c_slot, _, _ = stand_in_slot(StandInSource(native), tx(), out_socket, to_c.getsockname(), 7)
    py_slot, _, _ = stand_in_slot(StandInSource(None), tx(), out_socket, to_python.getsockname(), 7)
    for slot in (c_slot, py_slot):  # it had sent up to picture id 99, TL0PICIDX 9, elsewhere
        slot.vp8_next = (100, 10)
    receiver = Session(
        policy=Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    )
    try:
        for n in range(12):
            payload = vp8(n)
            packet = packet_number(n, payload)
            packet.vp8 = vp8_descriptor(payload)
            forward(packet, [c_slot, py_slot], native)
            data = to_c.recv(2048)
            assert data == to_python.recv(2048)
            assert c_slot.native or n == 0
            sent = receiver.unprotect(data)[24:]  # after the header and the 12-byte extensions
            if n == 0:  # the first starts at 100 / 10
                assert sent[2:5] == bytes((0x80, 100, 10))
            elif n % 3 == 0:
                picture_id = (100 + n) & 0x7FFF
                assert sent[2:5] == bytes((0x80 | picture_id >> 8, picture_id & 0xFF, 10 + n))
            elif n % 3 == 1:  # the same offset (108, from the first), in 7 bits
                assert sent[2] == (120 + n + 108) & 0x7F
            rest = (5, 3, 1)[n % 3]  # the descriptor's length: the rest is as received
            assert sent[:2] == payload[:2] and sent[rest:] == payload[rest:]
    finally:
        for sock in (out_socket, to_c, to_python):
            sock.close()


def test_the_c_fan_out_hands_back_a_viewer_whose_transport_changes() -> None:
    """The checks made before every send: the DTLS transport leaves CONNECTED (the socket may be
    about to close), the nominated pair changes, or the sender gets a new transport. The viewer
    goes back to the Python path with its counters, and joins again once steady."""
    tx, rx = srtp_pair()
    out_socket, to = udp_socket(), udp_socket()
    native = NativeViewers.create()
    assert native is not None
    source = StandInSource(native)
    slot, dtls, nominated = stand_in_slot(source, tx, out_socket, to.getsockname(), 9)
    payload = os.urandom(200)
    try:
        forward(packet_number(0, payload), [slot], native)  # Python path, then joins
        forward(packet_number(1, payload), [slot], native)  # C
        assert slot.native and slot.packets_sent == 2
        assert [rx.unprotect(to.recv(2048))[12 + 12 :] for _ in range(2)] == [payload] * 2

        dtls._state = State.CLOSED
        dropped = forward(packet_number(2, payload), [slot], native)
        assert dropped == [(slot, (2, 400, (65530 + 1 + slot.munger.seq_offset) & 0xFFFF, ANY_TS))]
        assert not native.slots
        slot.left_native(dropped[0][1], 0.0)  # as PublishedTrack does
        assert not slot.native and slot.packets_sent == 2
        forward(packet_number(3, payload), [slot], native)  # not connected: nothing sent
        dtls._state = State.CONNECTED
        forward(packet_number(4, payload), [slot], native)  # sent by Python, joins again
        assert slot.native and slot.packets_sent == 3

        nominated[1] = SimpleNamespace(protocol=nominated[1].protocol, remote_addr=("::1", 9))
        dropped = forward(packet_number(5, payload), [slot], native)
        assert dropped is not None and dropped[0][0] is slot
        slot.left_native(dropped[0][1], 0.0)

        slot.sender._RTCRtpSender__transport = SimpleNamespace()
        nominated[1].remote_addr = to.getsockname()
        assert native.leave(slot) is None  # not on the C fan-out any more
    finally:
        out_socket.close()
        to.close()


class _AnyTimestamp:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_TS: Any = _AnyTimestamp()


def test_the_c_fan_out_holds_no_reference_past_its_life() -> None:
    """Targets are released on leave and clear; a fan-out in a reference cycle is collected."""
    tx, _ = srtp_pair()
    out_socket, to = udp_socket(), udp_socket()
    try:
        native = NativeViewers.create()
        assert native is not None
        source = StandInSource(native)
        slot, _, _ = stand_in_slot(source, tx, out_socket, to.getsockname(), 3)
        forward(packet_number(0, b"x" * 10), [slot], native)
        assert slot.native
        before = sys.getrefcount(slot)
        for _ in range(100):
            counters = native.leave(slot)
            assert counters is not None
            slot.left_native(counters, 0.0)
            parameters = slot.native_parameters()
            assert parameters is not None and native.join(slot, parameters)
        assert sys.getrefcount(slot) == before
        assert [s for s, _ in native.clear()] == [slot] and not native.slots

        forward(packet_number(1, b"x" * 10), [slot], native)
        assert slot.native  # slot -> source -> native -> C target -> slot: a cycle
        watched = weakref.ref(native)
        del native, source, slot, parameters
        gc.collect()
        assert watched() is None
    finally:
        out_socket.close()
        to.close()
