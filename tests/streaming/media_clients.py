"""Client-side helpers for the media tests and the benchmark: real aiortc peers on loopback.

(Named uniquely rather than living in conftest.py so that test modules can import it safely.)
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import pathlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aioice.ice
import av
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack, VideoStreamTrack
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, pack_remb_fci

from streaming import MediaServer

VIDEO_RATE = 30
WIDTH, HEIGHT = 640, 480

# No ICE servers: aiortc's default asks a public STUN server; tests talk to this host only.
LOOPBACK_ONLY = RTCConfiguration(iceServers=[])


class SyntheticCamera(VideoStreamTrack):
    """640x480 at 30 fps with moving content, so every frame costs the encoder real bits."""

    kind = "video"

    def __init__(self, width: int = WIDTH, height: int = HEIGHT, rate: int = VIDEO_RATE) -> None:
        super().__init__()
        self.width, self.height, self.rate = width, height, rate
        self._count = 0
        self._start: float | None = None
        row = bytes(range(256)) * (width // 256 + 2)
        self._luma_rows = [row[i % 256 : i % 256 + width] for i in range(256)]

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._count / self.rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        shift = (self._count * 7) % 256
        luma = b"".join(self._luma_rows[(y + shift) % 256] for y in range(self.height))
        frame.planes[0].update(luma)
        chroma = bytes([(self._count * 3) % 256]) * (self.width * self.height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = int(self._count * 90000 / self.rate)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


class Tone(AudioStreamTrack):
    """aiortc's silent audio track is fine for forwarding: it is still Opus at 50 packets/s."""


class PacketCounter:
    """Counts RTP packets and whole frames (marker bit) a client receiver gets, without decoding."""

    def __init__(self) -> None:
        self.packets = 0
        self.frames = 0
        self.frame_times: list[float] = []
        self.first_packet_at: float | None = None
        self.keyframe_at: float | None = None
        self.latencies: list[float] = []
        self.ssrcs: set[int] = set()
        self.sequence_jumps = 0  # discontinuities a switch of source must not cause
        self._last_sequence: int | None = None

    def attach(self, receiver: Any, *, decode: bool = False) -> None:
        original = receiver._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            now = time.monotonic()
            self.packets += 1
            if self.first_packet_at is None:
                self.first_packet_at = now
            self.ssrcs.add(packet.ssrc)
            if (
                self._last_sequence is not None
                and (packet.sequence_number - self._last_sequence) & 0xFFFF > 1000
                and (self._last_sequence - packet.sequence_number) & 0xFFFF > 1000
            ):
                self.sequence_jumps += 1
            self._last_sequence = packet.sequence_number
            if packet.marker:
                self.frames += 1
                self.frame_times.append(now)
            abs_send_time = packet.extensions.abs_send_time
            if abs_send_time is not None and self.packets % 10 == 0:
                # abs-send-time is the publisher's 6.18 fixed-point NTP send time, forwarded as is.
                ntp = int((time.time() + 2208988800) * (1 << 18)) & 0xFFFFFF
                self.latencies.append(((ntp - abs_send_time) & 0xFFFFFF) / (1 << 18))
            if decode:
                await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle

    def fps(self, since: float, until: float) -> float:
        count = sum(1 for t in self.frame_times if since <= t < until)
        return count / (until - since)


class StunSent:
    """Counts the STUN messages that some ICE connections send, by the address they go to.

    Every STUN message aioice sends (checks and their retransmissions, consent checks, responses)
    goes out through `StunProtocol.send_stun`; `observe()` wraps it for its duration and counts
    what the connections `of_interest` send, then sends it as before.
    """

    def __init__(self, of_interest: Callable[[aioice.ice.Connection], bool]) -> None:
        self.of_interest = of_interest
        self.requests: list[tuple[str, int]] = []  # where each request went
        self.responses = 0

    @contextlib.contextmanager
    def observe(self) -> Iterator[StunSent]:
        original = aioice.ice.StunProtocol.send_stun
        counter = self

        def send_stun(
            protocol: aioice.ice.StunProtocol, message: stun.Message, addr: tuple[str, int]
        ) -> None:
            if counter.of_interest(protocol.receiver):  # type: ignore[arg-type]
                if message.message_class == stun.Class.REQUEST:
                    counter.requests.append(addr)
                else:
                    counter.responses += 1
            original(protocol, message, addr)

        aioice.ice.StunProtocol.send_stun = send_stun  # type: ignore[method-assign]
        try:
            yield self
        finally:
            aioice.ice.StunProtocol.send_stun = original  # type: ignore[method-assign]


class Decoy:
    """A UDP socket on 127.0.0.1 that nobody should ever send to, and the SDP line naming it as
    an ICE candidate (the highest priority, so a full ICE agent would check it first)."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.setblocking(False)
        self.port = self.socket.getsockname()[1]
        self.candidate = f"a=candidate:decoy 1 udp 2130706431 127.0.0.1 {self.port} typ host"

    def name_in(self, sdp: str) -> str:
        """`sdp` with the decoy listed before every m-line's first candidate."""
        lines = sdp.split("\r\n")
        out: list[str] = []
        in_media = named = False
        for line in lines:
            if line.startswith("m="):
                in_media, named = True, False
            if in_media and not named and line.startswith("a=candidate:"):
                out.append(self.candidate)
                named = True
            out.append(line)
        return "\r\n".join(out)

    def received(self) -> list[bytes]:
        datagrams = []
        while True:
            try:
                datagrams.append(self.socket.recv(4096))
            except BlockingIOError:
                return datagrams

    def close(self) -> None:
        self.socket.close()


def server_connections(server: MediaServer) -> set[aioice.ice.Connection]:
    """The aioice connections of every peer connection the media server holds now."""
    return {
        transceiver.receiver.transport.transport._connection
        for peer in server._peers.values()
        for transceiver in peer.pc.getTransceivers()
    }


async def wait_connected(pc: RTCPeerConnection, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pc.connectionState != "connected":
        if time.monotonic() > deadline:
            raise TimeoutError(f"peer stuck in {pc.connectionState}")
        await asyncio.sleep(0.02)


async def publisher_offer(
    pc: RTCPeerConnection,
    tracks: list[MediaStreamTrack],
    *,
    edit: Callable[[str], str] | None = None,
) -> str:
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    sdp = pc.localDescription.sdp
    return edit(sdp) if edit else sdp


async def apply_answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))


class Viewer:
    """The client side of a watch(): answers every server offer, counts what arrives per track."""

    def __init__(self, *, decode: bool = False) -> None:
        self.pc = RTCPeerConnection(LOOPBACK_ONLY)
        self.decode = decode
        self.counters: dict[str, PacketCounter] = {}  # mid -> counter
        self.tracks: list[dict[str, str]] = []
        self.offers: list[str] = []
        self.answered_at: float | None = None
        self.frames: asyncio.Queue[Any] = asyncio.Queue()
        self._readers: list[asyncio.Task[None]] = []
        self.peer_id: str | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self.decode and track.kind == "video":
                self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                await self.frames.put((time.monotonic(), frame))
        except Exception:
            return

    async def accept(self, offer: dict[str, Any], answer: Callable[[str], Awaitable[None]]) -> None:
        self.peer_id = offer["peer_id"]
        self.offers.append(offer["sdp"])
        self.tracks = offer.get("tracks", [])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid is not None and transceiver.mid not in self.counters:
                counter = self.counters[transceiver.mid] = PacketCounter()
                counter.attach(transceiver.receiver, decode=self.decode)
        reply = await self.pc.createAnswer()
        await self.pc.setLocalDescription(reply)
        self.answered_at = time.monotonic()
        await answer(self.pc.localDescription.sdp)

    def counter(
        self, kind: str, person_id: str | None = None, source: str | None = None
    ) -> PacketCounter | None:
        for track in self.tracks:
            if (
                track["kind"] == kind
                and (person_id is None or track["person_id"] == person_id)
                and (source is None or track["source"] == source)
            ):
                return self.counters.get(track["mid"])
        return None

    def kinds(self) -> set[tuple[str, str]]:
        return {(t["person_id"], t["kind"]) for t in self.tracks}

    async def close(self) -> None:
        for task in self._readers:
            task.cancel()
        await self.pc.close()
        for task in self._readers:
            try:
                await task
            except asyncio.CancelledError:
                pass


def tap(viewer: Viewer, mid: str) -> list[Any]:
    """Every (decrypted, parsed) RTP packet the viewer's client gets on m-line `mid`."""
    received: list[Any] = []
    for transceiver in viewer.pc.getTransceivers():
        if transceiver.mid == mid:
            receiver = transceiver.receiver
            counting = receiver._handle_rtp_packet

            async def handle(packet: Any, arrival_time_ms: int, counting: Any = counting) -> None:
                received.append(packet)
                await counting(packet, arrival_time_ms)

            receiver._handle_rtp_packet = handle
    return received


async def say_link(viewer: Viewer, slot: Any, link_bps: int) -> None:
    """The viewer's browser says its link carries `link_bps` (REMB) for the server's viewer
    `slot`'s stream, and from now on sends no estimate of its own (aiortc's wanders)."""
    (transceiver,) = [t for t in viewer.pc.getTransceivers() if t.mid == slot.transceiver.mid]
    receiver = transceiver.receiver
    send_rtcp = getattr(receiver, "_dais_send_rtcp", receiver._send_rtcp)
    receiver._dais_send_rtcp = send_rtcp

    async def no_remb_but_ours(packet: Any) -> None:
        if not (isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP):
            await send_rtcp(packet)

    receiver._send_rtcp = no_remb_but_ours
    await send_rtcp(
        RtcpPsfbPacket(
            fmt=RTCP_PSFB_APP,
            ssrc=receiver._RTCRtpReceiver__rtcp_ssrc,
            media_ssrc=0,
            fci=pack_remb_fci(link_bps, [slot.ssrc]),
        )
    )


async def say_link_until_heard(viewer: Viewer, slot: Any, link_bps: int) -> None:
    """`say_link`, again every 0.1 s until the server's `slot` has it (a REMB sent before the
    viewer's connection is up is lost)."""
    for _ in range(50):
        await say_link(viewer, slot, link_bps)
        if slot.estimate_bps is not None and abs(slot.estimate_bps - link_bps) < link_bps / 100:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never heard that the link carries {link_bps}")


async def no_rtcp(packet: Any) -> None:
    """A stand-in sender's RTCP handling (`_handle_rtcp_packet`): none."""


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout} s")
        await asyncio.sleep(0.02)


class Conference:
    """A MediaServer plus the client peers of one test; `send` is wired to the viewers' answers."""

    def __init__(self, recordings: pathlib.Path, **options: Any) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.viewers: dict[str, Viewer] = {}
        self.publishers: list[RTCPeerConnection] = []
        self.answer_tasks: set[asyncio.Task[None]] = set()
        self.recordings = recordings
        self.server = MediaServer(
            ice_servers=[], recordings_dir=recordings, send=self._send, **options
        )

    async def _send(self, connection_id: str, message: dict[str, Any]) -> None:
        self.messages.append((connection_id, message))
        viewer = self.viewers.get(connection_id)
        if viewer is not None and message["type"] == "media.offer":
            task = asyncio.ensure_future(
                viewer.accept(message, self._answerer(connection_id, message))
            )
            self.answer_tasks.add(task)
            task.add_done_callback(self.answer_tasks.discard)

    def _answerer(self, connection_id: str, offer: dict[str, Any]) -> Callable[[str], Any]:
        async def answer(sdp: str) -> None:
            await self.server.answer(connection_id=connection_id, peer_id=offer["peer_id"], sdp=sdp)

        return answer

    async def publish(
        self,
        session_id: str,
        person_id: str,
        *,
        connection_id: str | None = None,
        may_publish: bool = True,
        tracks: list[Any] | None = None,
        edit: Callable[[str], str] | None = None,
    ) -> RTCPeerConnection:
        pc = RTCPeerConnection(LOOPBACK_ONLY)
        self.publishers.append(pc)
        if tracks is None:
            tracks = [SyntheticCamera(), Tone()]
        sdp = await publisher_offer(pc, tracks, edit=edit)
        reply = await self.server.publish(
            session_id=session_id,
            person_id=person_id,
            connection_id=connection_id or f"conn-{person_id}",
            may_publish=may_publish,
            sdp=sdp,
        )
        await apply_answer(pc, reply["sdp"])
        return pc

    async def watch(
        self,
        session_id: str,
        person_id: str,
        *,
        connection_id: str | None = None,
        sees_green_room: bool = False,
        decode: bool = False,
        audio_only: bool = False,
    ) -> Viewer:
        connection_id = connection_id or f"conn-{person_id}"
        viewer = Viewer(decode=decode)
        self.viewers[connection_id] = viewer
        offer = await self.server.watch(
            session_id=session_id,
            person_id=person_id,
            connection_id=connection_id,
            sees_green_room=sees_green_room,
            audio_only=audio_only,
        )
        await viewer.accept(offer, self._answerer(connection_id, offer))
        return viewer

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until every renegotiation the server started has been answered."""
        await eventually(lambda: not self.answer_tasks, timeout, "renegotiation")
        for task in list(self.answer_tasks):
            await task

    async def close(self) -> None:
        await self.settle()
        await self.server.close()
        for viewer in self.viewers.values():
            await viewer.close()
        for pc in self.publishers:
            await pc.close()


RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"


class SimulcastPublisher:
    """A speaker's browser sending its camera as three simulcast layers, as Chromium and Firefox
    do (aiortc cannot): its video m-line offers rids `q`, `h` and `f` (lowest first, as Dais's
    page lists them) and no SSRCs; three VP8 encoders, at a quarter, half and the full 640x480,
    each send on an SSRC of their own with the MID and their rid in header extensions. A PLI for
    a layer's SSRC gets that layer a keyframe; nothing is sent again (no NACK answers)."""

    RIDS = ("q", "h", "f")
    SIZES = ((160, 120), (320, 240), (640, 480))
    RATES = (250_000, 400_000, 1_200_000)

    def __init__(self, rate: int = 15) -> None:
        self.pc = RTCPeerConnection(LOOPBACK_ONLY)
        self.rate = rate
        self.ssrcs = [0x1000 + i for i in range(len(self.RIDS))]
        self.sent = [0] * len(self.RIDS)  # packets per layer
        self.plis = [0] * len(self.RIDS)
        self._keyframe = [True] * len(self.RIDS)
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _with_layers(sdp: str) -> str:
        lines, out, in_video = sdp.split("\r\n"), [], False
        for line in lines:
            if line.startswith("m="):
                if in_video:
                    out.extend(SimulcastPublisher._layer_lines())
                in_video = line.startswith("m=video")
            if in_video and line.startswith(("a=ssrc:", "a=ssrc-group:")):
                continue
            if line == "" and in_video:
                out.extend(SimulcastPublisher._layer_lines())
                in_video = False
            out.append(line)
        return "\r\n".join(out)

    @staticmethod
    def _layer_lines() -> list[str]:
        return [
            f"a=extmap:10 {RID_URI}",
            f"a=extmap:11 {REPAIRED_RID_URI}",
            *(f"a=rid:{rid} send" for rid in SimulcastPublisher.RIDS),
            "a=simulcast:send " + ";".join(SimulcastPublisher.RIDS),
        ]

    async def publish(self, conference: Conference, session_id: str, person_id: str) -> str:
        """Offer, apply the server's answer, and start sending once connected; the answer."""
        self.pc.addTransceiver(Tone(), direction="sendonly")
        self.pc.addTransceiver("video", direction="sendonly")
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        reply = await conference.server.publish(
            session_id=session_id,
            person_id=person_id,
            connection_id=f"conn-{person_id}",
            may_publish=True,
            sdp=self._with_layers(self.pc.localDescription.sdp),
        )
        await apply_answer(self.pc, reply["sdp"])
        conference.publishers.append(self.pc)
        self._task = asyncio.ensure_future(self._send())
        return str(reply["sdp"])

    async def _send(self) -> None:
        from aiortc.codecs.vpx import Vp8Encoder
        from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
        from aiortc.rtp import RTCP_PSFB_PLI, HeaderExtensionsMap, RtcpPsfbPacket, RtpPacket

        await wait_connected(self.pc)
        (video,) = [t for t in self.pc.getTransceivers() if t.kind == "video"]
        payload_type = next(c for c in video._codecs if c.mimeType.lower() == "video/vp8")
        mid_id = next(e.id for e in video._headerExtensions if e.uri == MID_URI)
        extensions = HeaderExtensionsMap()
        extensions.configure(
            RTCRtpParameters(
                headerExtensions=[
                    RTCRtpHeaderExtensionParameters(id=mid_id, uri=MID_URI),
                    RTCRtpHeaderExtensionParameters(id=10, uri=RID_URI),
                ]
            )
        )
        dtls = video.sender.transport
        publisher = self

        class LayerFeedback:
            def __init__(self, index: int) -> None:
                self.index = index

            async def _handle_rtcp_packet(self, packet: Any) -> None:
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_PLI:
                    publisher.plis[self.index] += 1
                    publisher._keyframe[self.index] = True

        for index, ssrc in enumerate(self.ssrcs):
            dtls._rtp_router.register_sender(LayerFeedback(index), ssrc)
        encoders = []
        for rate in self.RATES:
            encoder = Vp8Encoder()
            encoder.target_bitrate = rate
            encoders.append(encoder)
        camera = SyntheticCamera(*self.SIZES[-1], rate=self.rate)
        sequence = [0] * len(self.RIDS)
        try:
            while True:
                frame = await camera.recv()
                for index, (width, height) in enumerate(self.SIZES):
                    scaled = frame if width == WIDTH else frame.reformat(width=width, height=height)
                    scaled.pts, scaled.time_base = frame.pts, frame.time_base
                    force, self._keyframe[index] = self._keyframe[index], False
                    payloads, timestamp = encoders[index].encode(scaled, force)
                    for n, payload in enumerate(payloads):
                        packet = RtpPacket(
                            payload_type=payload_type.payloadType,
                            marker=int(n == len(payloads) - 1),
                            sequence_number=sequence[index],
                            timestamp=timestamp,
                            ssrc=self.ssrcs[index],
                            payload=payload,
                        )
                        packet.extensions.mid = video.mid
                        packet.extensions.rtp_stream_id = self.RIDS[index]
                        sequence[index] = (sequence[index] + 1) & 0xFFFF
                        await dtls._send_rtp(packet.serialize(extensions))
                        self.sent[index] += 1
        except (asyncio.CancelledError, ConnectionError):
            return

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pc.close()


class StandInSource:
    """What a ViewerSlot needs of its PublishedTrack, for slots fed by hand (tests and
    bench/media.py): one layer, one codec (VP8 unless given), the C fan-out `native` if any."""

    rid = None
    last_vp8 = None
    last_forwarded = None

    def __init__(self, native: Any = None, *, codec: Any = None) -> None:
        self.native = native
        self._codec = codec or SimpleNamespace(mimeType="video/VP8", clockRate=90000, parameters={})

    @property
    def main(self) -> Any:
        return self

    @property
    def layers(self) -> list[Any]:
        return [self]

    def codec(self, payload_type: int) -> Any:
        return self._codec

    def add_slot(self, slot: Any) -> None: ...

    def remove_slot(self, slot: Any) -> None: ...

    def request_keyframe(self) -> None: ...

    def join_native(self, slot: Any, parameters: Any) -> bool:
        return self.native is not None and bool(self.native.join(slot, parameters))

    def native_counters(self, slot: Any) -> Any:
        return self.native.counters(slot) if self.native is not None else None
