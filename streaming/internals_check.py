"""The start-up check of `streaming/aiortc_hooks.py`, by behaviour: two aiortc peer connections
in this process, one of them with the server's hooks and ICE-lite (`streaming/ice_lite.py`), pass
real RTP packets through the hooks, and the check asserts they arrived where the hooks expect them.
`MediaServer` runs it before it serves anything; `check_internals` raises
`AiortcInternalsChanged` naming what no longer works. Source-text checks (which need aiortc's .py
files) only add diagnostics to the log.

It lives beside the hooks rather than in them because it exercises ICE-lite too, which is built
on the hooks: the hooks import nothing of what they are checked with.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from . import aiortc_hooks as hooks
from .ice_lite import serve_ice_lite

logger = logging.getLogger("streaming.aiortc_hooks")


# The behaviour of the aiortc in this process cannot change while it runs: once `_exercise` has
# passed, later MediaServers (one per app, and one per test) do not repeat it.
_behaviour_checked = False
_check_lock = threading.Lock()


def check_internals() -> None:
    """Raise AiortcInternalsChanged unless every hook works, checked by behaviour.

    Logs the source-text diagnostics (never fatal) first, so that a failure comes with its likely
    cause. The behavioural check runs in a thread with its own event loop: it is called from
    synchronous code (MediaServer's constructor) that may itself run inside an event loop.
    """
    global _behaviour_checked
    for problem in hooks.source_diagnostics():
        logger.warning("aiortc internals: the source no longer shows %s", problem)
    problems = hooks.missing_attributes()
    with _check_lock:
        if not problems and not _behaviour_checked:
            found: list[str] = []

            def run() -> None:
                try:
                    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
                        found.extend(runner.run(asyncio.wait_for(_exercise(), 20)))
                except Exception as exc:  # any failure to run is a failed check, with its cause
                    found.append(f"the hooks could not be exercised: {exc!r}")

            thread = threading.Thread(target=run, name="aiortc-hooks-check")
            thread.start()
            thread.join()
            problems = found
            _behaviour_checked = not problems
    if problems:
        raise hooks.AiortcInternalsChanged(
            "aiortc internals used by streaming/aiortc_hooks.py changed: " + "; ".join(problems)
        )


class _Exercise:
    """What the behavioural check saw arrive, each where a hook should have put it."""

    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []  # at the server's receiver, by hook_receiver
        self.frames = 0  # reassembled by the real jitter buffer behind hook_receiver
        self.keyframe_requests = 0  # a PLI from the server, at the client's hooked sender
        self.viewer_keyframe_requests = 0  # a PLI/FIR from the client, at the server's sender
        self.nacks: list[int] = []  # NACKed sequence numbers, at the server's hooked sender
        self.sent = 0  # packets the server sent back through RtpOutput
        self.skipped: int | None = None  # the one sequence number the server left out


async def _exercise() -> list[str]:
    """Two peer connections in this process: a client sending a video track, and a server with
    ICE-lite and the hooks on its one sendrecv m-line. Every packet the server receives goes to
    the hook (not a decoder), and straight back to the client through RtpOutput (SRTP, ICE socket)
    with one left out; the client must then decode frames from it, NACK the missing one to the
    server's hooked sender, and receive the server's PLI at its own hooked sender. Then the Sender
    Report figures and, when it is built, the C fan-out (with the names it is given)."""
    from aiortc.mediastreams import VideoStreamTrack

    hooks.defer_bandwidth_estimators()
    seen = _Exercise()
    problems: list[str] = []
    # No ICE servers: aiortc's default would ask a public STUN server; both ends are this host.
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    certificate = hooks.ServerCertificate.generateCertificate()
    server = hooks.server_peer_connection(RTCConfiguration(iceServers=[]), certificate)
    serve_ice_lite(server)
    try:
        client_transceiver = client.addTransceiver(VideoStreamTrack(), direction="sendrecv")
        hooks.hook_sender(
            client_transceiver.sender,
            lambda: setattr(seen, "keyframe_requests", seen.keyframe_requests + 1),
            lambda sequence_number: None,
        )
        await client.setLocalDescription(await client.createOffer())
        await server.setRemoteDescription(client.localDescription)
        (transceiver,) = server.getTransceivers()
        transceiver.sender.replaceTrack(hooks.IdleTrack("video"))
        transceiver.direction = "sendrecv"
        sender = transceiver.sender
        output = hooks.RtpOutput(sender)
        ssrc = hooks.sender_ssrc(sender)

        def on_packet(packet: RtpPacket) -> None:
            seen.packets.append(packet)
            if len(seen.packets) == 20:
                seen.skipped = packet.sequence_number  # the client NACKs it
                return
            data = (
                bytes((0x80, (packet.marker << 7) | packet.payload_type))
                + packet.sequence_number.to_bytes(2, "big")
                + packet.timestamp.to_bytes(4, "big")
                + ssrc.to_bytes(4, "big")
                + packet.payload
            )
            if output.send(data):
                seen.sent += 1

        hooks.hook_receiver(
            transceiver.receiver,
            on_packet,
            lambda frame: setattr(seen, "frames", seen.frames + 1),
        )
        hooks.hook_sender(
            sender,
            lambda: setattr(seen, "viewer_keyframe_requests", seen.viewer_keyframe_requests + 1),
            seen.nacks.append,
        )
        await server.setLocalDescription(await server.createAnswer())
        fingerprint = certificate.getFingerprints()[0].value
        if f"a=fingerprint:sha-256 {fingerprint}" not in server.localDescription.sdp:
            problems.append("a server peer connection offers the DTLS certificate it is given")
        await client.setRemoteDescription(server.localDescription)
        (client_receiver,) = [t.receiver for t in client.getTransceivers()]
        decoded = asyncio.ensure_future(client_receiver.track.recv())

        async def until(condition: Callable[[], bool], seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return condition()

        if not await until(lambda: server.connectionState == "connected", 10):
            return [f"two peer connections in this process connect ({server.connectionState})"]
        if not await until(lambda: len(seen.packets) >= 40 and seen.sent >= 30, 4):
            problems.append(
                f"RTCRtpReceiver's packets reach hook_receiver ({len(seen.packets)} arrived) and"
                f" RtpOutput sends on the DTLS transport's SRTP session and ICE socket"
                f" ({seen.sent} sent)"
            )
            return problems
        if not await until(lambda: seen.frames > 0, 3):
            problems.append("the receiver's real jitter buffer reassembles frames behind the hook")
        estimator = transceiver.receiver._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        if not (isinstance(estimator, hooks.LazyBandwidthEstimator) and estimator.built):
            problems.append(
                "a receiver builds its deferred bandwidth estimator on its first packet"
            )
        try:
            await asyncio.wait_for(decoded, 5)
        except (TimeoutError, MediaStreamError):
            problems.append("the client decodes what RtpOutput sent (SRTP, socket, address)")
        if not await until(lambda: seen.skipped in seen.nacks, 3):
            problems.append("a viewer's NACK reaches hook_sender's retransmit callback")
        await hooks.request_keyframe_upstream(transceiver.receiver, seen.packets[-1].ssrc)
        if not await until(lambda: seen.keyframe_requests > 0, 3):
            problems.append("request_keyframe_upstream's PLI reaches a hooked sender's callback")

        problems += _exercise_simulcast(transceiver)

        # Sender Reports: what note_sent writes is what aiortc reports.
        hooks.note_sent(sender, ntp_time=1 << 40, rtp_timestamp=1234, packets=4321, octets=98765)
        if not _reports(await sender.getStats(), 4321, 98765):
            problems.append("note_sent writes the sender's Sender Report counters")
        missing = [name for name in hooks.SENDER_ATTRIBUTES[2:] if not hasattr(sender, name)]
        problems += [f"RTCRtpSender.{name}" for name in missing]
        problems += await _exercise_c_fan_out(sender, output, ssrc, seen.packets[-10:])
    finally:
        await client.close()
        await server.close()
    return problems


def _exercise_simulcast(transceiver: Any) -> list[str]:
    """Receiving simulcast: a stream no m-line declared is routed by its MID and learned, its
    retransmissions tied to it by their repaired rid, and the receiver NACKs per stream."""
    problems: list[str] = []
    receiver = transceiver.receiver
    transport = receiver.transport
    hooks.route_by_mid(transport)
    layer = RtpPacket(payload_type=127, ssrc=0x5EED0001)
    layer.extensions.mid = transceiver.mid
    layer.extensions.rtp_stream_id = "f"
    repair = RtpPacket(payload_type=127, ssrc=0x5EED0002)
    repair.extensions.mid = transceiver.mid
    repair.extensions.repaired_rtp_stream_id = "f"
    router = transport._rtp_router
    if router.route_rtp(layer) is not receiver or router.ssrc_table.get(layer.ssrc) is not receiver:
        problems.append("route_by_mid routes and learns an undeclared SSRC by its MID")
    router.route_rtp(repair)
    if receiver._RTCRtpReceiver__rtx_ssrc.get(repair.ssrc) != layer.ssrc:
        problems.append(
            "route_by_mid ties a repair stream to its layer (RTCRtpReceiver.__rtx_ssrc)"
        )
    hooks.receive_simulcast(transceiver, {})
    if not isinstance(receiver._RTCRtpReceiver__nack_generator, hooks._NacksPerStream):
        problems.append("receive_simulcast gives the receiver a NACK generator per stream")
    return problems


def _reports(stats: Any, packets: int, octets: int) -> bool:
    return any(
        getattr(s, "type", None) == "outbound-rtp"
        and s.packetsSent == packets
        and s.bytesSent == octets
        for s in stats.values()
    )


async def _exercise_c_fan_out(
    sender: RTCRtpSender, output: hooks.RtpOutput, ssrc: int, packets: list[RtpPacket]
) -> list[str]:
    """The C fan-out, when built, sends with the names and target Python gives it, and writes the
    Sender Report figures by the names it is given."""
    try:
        from . import _fanout
    except ImportError:
        return []
    address = hooks.srtp_protect_address()
    target = output.native_target()
    if address is None or target is None:
        return []
    fanout = _fanout.Fanout(address, hooks.CONNECTED, hooks.SENDER_ATTRIBUTES)
    joined = fanout.add(
        object(), sender, target.dtls, target.nominated, target.pair, target.session,
        target.context, target.fd, target.host, target.port, ssrc, packets[0].payload_type,
        0, 0, 0, 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    if not joined:
        return ["the C fan-out takes a target RtpOutput made"]
    for packet in packets:
        dropped = fanout.send(
            (packet.sequence_number + 1000) & 0xFFFF,
            packet.timestamp,
            1 << 40,
            len(packet.payload),
            [(0x80, packet.marker << 7, packet.payload)],
            0,
            0,
            -1,
            0,
        )
        if dropped is not None:
            return [f"the C fan-out finds the sender's transport by {hooks.SENDER_ATTRIBUTES[:2]}"]
    octets = len(packets[0].payload)  # Sender Report figures are written on the first packet
    if not _reports(await sender.getStats(), 1, octets):
        return [f"the C fan-out writes the Sender Report figures by {hooks.SENDER_ATTRIBUTES[2:]}"]
    fanout.clear()
    return []
