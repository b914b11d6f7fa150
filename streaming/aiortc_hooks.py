"""Every place where Dais reaches into private internals of aiortc 1.16 (and aioice, pylibsrtp).

aiortc only moves media through decoded frames: a receiver decodes, a sender encodes. The forwarder
must pass encoded RTP packets through untouched, so it taps aiortc at three points:

* ingest: `RTCRtpReceiver._handle_rtp_packet` SRTP-decrypts, unwraps RTX, sends NACKs/REMB and
  depayloads, then hands each packet to its private `__jitter_buffer`. We swap that jitter buffer for
  a wrapper which gives the packet to the forwarder first (no queueing delay), then lets the real
  jitter buffer reassemble frames for the recorder and report upstream loss (it asks for PLI), and
  always answers "no frame": the receiver's decoder thread never gets anything to decode.
* egress: a viewer's `RTCRtpSender` is given a track that never yields a frame, so its `_run_rtp`
  loop never creates an encoder. We write rewritten RTP straight to the viewer's DTLS transport:
  SRTP-protect with its `_tx_srtp` session (calling pylibsrtp's C function on the session's own
  buffer, ~2 us cheaper than `Session.protect`) and `sendto` on the nominated ICE pair's socket
  (asyncio's transport bypassed; uvloop's transport, which has no socket to bypass, used as is),
  synchronously, so one incoming packet fans out without a task switch per viewer (protected for
  every viewer first, then sent in one loop). The sender's private RTCP counters are updated so
  its Sender Reports stay truthful (lip sync in browsers).
* set-up: aiortc gives every video receiver a receive-side bandwidth estimator whose rate counter
  allocates 1,000 one-millisecond buckets at once, about half the CPU of opening a viewing
  connection; a viewer's send-only m-line never receives a packet. `defer_bandwidth_estimators`
  has aiortc's receivers build it on their first packet instead (`LazyBandwidthEstimator`).
* set-up: every server peer connection of a MediaServer shares one DTLS certificate
  (`server_peer_connection`, `ServerCertificate`), as mediasoup's and Janus's transports do:
  aiortc generates a key pair and a certificate per connection, and hashes it for every SDP.
* feedback: the sender's `_send_keyframe` (called on a viewer's PLI/FIR) and `_retransmit` (called on
  NACK) are replaced per instance, so keyframe requests go up to the publisher and retransmissions
  come from the forwarder's packet history.

The server's ICE is lite (`streaming/ice_lite.py`): it subclasses aioice's Connection, and the
private attributes that subclass relies on are listed here (`ICE_LITE_CONNECTION_ATTRIBUTES`); how
a server peer connection gets lite transports (`replace_dtls_transport_factory`, `ice_connection`)
is here too. So is every other private attribute the rest of `streaming/` touches (a sender's SSRC
and track ids, a transceiver's offered direction), and the C fan-out's attribute names
(`SENDER_ATTRIBUTES`: streaming/_fanout.c spells none itself).

`streaming/internals_check.py`'s `check_internals()` checks all of this by behaviour, at start-up
(MediaServer calls it) and in a test: two aiortc peer connections in this process, one of them with
the server's hooks and ICE-lite, pass real RTP packets through the hooks, and the check asserts
they arrived where the hooks expect them. Source-text checks (which need aiortc's .py files) only
add diagnostics to the log. pylibsrtp's cffi binding is imported lazily (`load_srtp_binding`): when it cannot be loaded
or has changed, the C fan-out and the in-place SRTP path are off and the public
`Session.protect` serves, rather than `import streaming` failing.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import inspect
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import aioice.ice
import aiortc.rtcpeerconnection
import aiortc.rtcrtpreceiver
import pylibsrtp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCCertificate, RTCDtlsFingerprint, RTCDtlsTransport, State
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
from aiortc.rtcpeerconnection import add_transport_description, is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpreceiver import NackGenerator
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription

logger = logging.getLogger(__name__)

__all__ = [
    "CONNECTED",
    "ICE_LITE_CONNECTION_ATTRIBUTES",
    "SENDER_ATTRIBUTES",
    "AiortcInternalsChanged",
    "ServerCertificate",
    "IdleTrack",
    "RtpOutput",
    "RtpPacket",
    "JitterFrame",
    "SpeakerRate",
    "ask_for_opus_fec",
    "cap_speaker_rate",
    "defer_bandwidth_estimators",
    "codec_for_payload_type",
    "compatible_payload_type",
    "hook_receiver",
    "hook_sender",
    "fresh_sender_reports",
    "send_sender_report",
    "ntp_time_now",
    "ice_connection",
    "load_srtp_binding",
    "name_sender_track",
    "negotiated_extensions",
    "note_sent",
    "offered_direction",
    "replace_dtls_transport_factory",
    "receive_simulcast",
    "request_keyframe_upstream",
    "restart_jitter_buffer",
    "route_by_mid",
    "server_peer_connection",
    "rtx_stream",
    "sendable",
    "sender_rtt",
    "sender_ssrc",
    "source_diagnostics",
    "srtp_protect_address",
]

CONNECTED = State.CONNECTED  # also what the C fan-out compares a DTLS transport's state with

# The private attributes the C fan-out reads and writes, by name, in the order Fanout() takes them:
# the sender's DTLS transport, that transport's state, and the sender's Sender Report figures (NTP
# time, RTP timestamp, packet and octet counts). The Python path below uses the same attributes
# (spelled out, for speed); `internals_check.check_internals` checks them by behaviour.
SENDER_ATTRIBUTES = (
    "_RTCRtpSender__transport",
    "_state",
    "_RTCRtpSender__ntp_timestamp",
    "_RTCRtpSender__rtp_timestamp",
    "_RTCRtpSender__packet_count",
    "_RTCRtpSender__octet_count",
)

# What IceLiteConnection (streaming/ice_lite.py) reads, writes or overrides on aioice's Connection.
ICE_LITE_CONNECTION_ATTRIBUTES = (
    "_check_list",
    "_check_list_done",
    "_check_list_maybe_complete",
    "_check_list_maybe_fail",
    "_check_list_state",
    "_closing",
    "_early_checks",
    "_early_checks_done",
    "_find_pair",
    "_local_candidates_end",
    "_nominated",
    "_remote_candidates",
    "_remote_candidates_end",
    "_tie_breaker",
    "check_incoming",
    "check_start",
    "check_start_task",
    "close",
    "connect",
    "ice_controlling",
    "query_consent",
    "remote_password",
    "remote_username",
    "request_received",
    "switch_role",
)

# libsrtp 2's srtp_protect, as pylibsrtp's binding declares it; the C fan-out calls it by address.
_SRTP_PROTECT_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


class AiortcInternalsChanged(RuntimeError):
    """aiortc no longer has the private attributes the forwarder hooks."""


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _assigns(source: str, attribute: str) -> bool:
    """Whether `source` assigns self.<attribute> (annotated or not)."""
    return re.search(rf"self\.{re.escape(attribute)}\s*(:[^=\n]*)?=", source) is not None


def source_diagnostics() -> list[str]:
    """What aiortc's, aioice's and pylibsrtp's source text no longer says as the hooks expect.

    Only diagnostics (the behaviour is what `internals_check.check_internals` decides on): they explain a failed
    behavioural check, or warn of a change that still works. They need the libraries' .py files;
    without them nothing is reported.
    """
    problems: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    handle_rtp = _source(RTCRtpReceiver._handle_rtp_packet)
    expect(
        "self.__jitter_buffer.add(packet)" in handle_rtp,
        "RTCRtpReceiver._handle_rtp_packet feeds self.__jitter_buffer.add(packet)",
    )
    expect(
        "encoded_frame is not None" in handle_rtp,
        "RTCRtpReceiver._handle_rtp_packet only decodes a frame returned by the jitter buffer",
    )
    expect(
        "__jitter_buffer = JitterBuffer" in _source(RTCRtpReceiver.__init__),
        "RTCRtpReceiver.__init__ creates a private __jitter_buffer",
    )
    expect(hasattr(RTCRtpReceiver, "_send_rtcp_pli"), "RTCRtpReceiver._send_rtcp_pli")
    expect(
        "remb = self.__remote_bitrate_estimator.add(" in _source(RTCRtpReceiver._handle_rtp_packet),
        "RTCRtpReceiver sends REMB from its private __remote_bitrate_estimator.add()",
    )
    expect(
        "tuple[bool, Optional[JitterFrame]]" in _source(JitterBuffer.add),
        "JitterBuffer.add returns (pli_flag, frame)",
    )

    sender_rtcp = _source(RTCRtpSender._handle_rtcp_packet)
    expect(
        "self._send_keyframe()" in sender_rtcp, "RTCRtpSender calls self._send_keyframe() on PLI"
    )
    expect("await self._retransmit(seq)" in sender_rtcp, "RTCRtpSender retransmits on NACK")
    expect(
        "recipient._handle_rtcp_packet(packet)" in _source(RTCDtlsTransport._handle_rtcp_data),
        "RTCDtlsTransport hands RTCP to each recipient's _handle_rtcp_packet",
    )
    sender_init = _source(RTCRtpSender.__init__)
    for name in (
        "__rtt",
        "__transport",
        "__ntp_timestamp",
        "__rtp_timestamp",
        "__packet_count",
        "__octet_count",
    ):
        expect(_assigns(sender_init, name), f"RTCRtpSender.{name}")
    expect("self._ssrc = " in sender_init, "RTCRtpSender._ssrc")
    expect(
        "self.__track.recv()" in _source(RTCRtpSender._next_encoded_frame),
        "RTCRtpSender only encodes what its track's recv() returns",
    )

    dtls_init = _source(RTCDtlsTransport.__init__)
    for name in ("_tx_srtp", "_state", "_transport"):
        expect(_assigns(dtls_init, name), f"RTCDtlsTransport.{name}")
    expect(
        "self._nominated" in _source(aioice.ice.Connection.__init__), "aioice.Connection._nominated"
    )
    expect(
        "active_pair.protocol.send_data(data, active_pair.remote_addr)"
        in _source(aioice.ice.Connection.sendto),
        "aioice sends on the nominated pair",
    )
    expect(
        "self.transport.sendto(data, addr)" in _source(aioice.ice.StunProtocol.send_data),
        "aioice.StunProtocol.transport",
    )

    session_init = _source(pylibsrtp.Session.__init__)
    expect(
        "self._cdata = " in session_init
        and "self._buffer = " in session_init
        and "self._srtp = " in session_init,
        "pylibsrtp.Session scratch buffer and context",
    )
    expect(
        "func(self._srtp[0], self._cdata, len_p)" in _source(pylibsrtp.Session),
        "pylibsrtp.Session protects in place in its scratch buffer",
    )

    # RtpOutput writes asyncio's datagram socket directly (uvloop's transport has none: its own
    # sendto is used); a selector transport that stops keeping `_sock` would silently be slower.
    expect(
        "self._sock = sock" in _source(asyncio.selector_events._SelectorTransport.__init__),  # type: ignore[attr-defined]
        "asyncio's selector transports keep their socket in _sock",
    )

    # ICE-lite (streaming/ice_lite.py) replaces how aioice starts checks and consent, and how
    # aiortc makes ICE transports and writes their parameters.
    connection = aioice.ice.Connection
    expect(
        hasattr(RTCPeerConnection, "_RTCPeerConnection__createDtlsTransport"),
        "RTCPeerConnection.__createDtlsTransport makes every ICE transport",
    )
    expect(
        "self._connection = Connection(" in _source(RTCIceGatherer.__init__)
        and "await self._connection.connect()" in _source(RTCIceTransport.start),
        "an RTCIceGatherer's aioice Connection is what RTCIceTransport.start connects",
    )
    expect(
        "iceGatherer.getLocalParameters()" in _source(add_transport_description)
        and "m.ice.iceLite" in _source(SessionDescription.__str__),
        "aiortc writes a=ice-lite when the gatherer's parameters say iceLite",
    )
    expect(
        "self.check_incoming(message, addr, protocol)" in _source(connection.request_received)
        and "self._early_checks.append(" in _source(connection.request_received)
        and "self._tie_breaker" in _source(connection.request_received),
        "aioice answers a check, then hands it to check_incoming (or keeps it until connect)",
    )
    expect(
        "self.check_start_task(pair)" in _source(connection._check_periodic)
        and "self.check_start_task(pair)" in _source(connection.check_incoming)
        and "self.query_consent()" in _source(connection.connect),
        "aioice starts checks by check_start_task and consent checks from connect only",
    )
    for name in (
        "_check_list_state",
        "_check_list_done",
        "_early_checks_done",
        "_remote_candidates_end",
        "_tie_breaker",
        "ice_controlling",
    ):
        expect(_assigns(_source(connection.__init__), name), f"aioice.Connection.{name}")
    for name in ("_check_list_maybe_complete", "_find_pair", "close"):
        expect(hasattr(connection, name), f"aioice.Connection.{name}")

    sender_init = _source(RTCRtpSender.__init__)
    for name in ("__lsr", "__lsr_time", "__rtx_payload_type", "_rtx_ssrc"):
        expect(_assigns(sender_init, name), f"RTCRtpSender.{name}")

    transceiver_init = _source(RTCRtpTransceiver.__init__)
    expect("self._codecs" in transceiver_init, "RTCRtpTransceiver._codecs")
    expect("self._headerExtensions" in transceiver_init, "RTCRtpTransceiver._headerExtensions")

    return problems


def missing_attributes() -> list[str]:
    """The private attributes the hooks name, looked up on real aiortc and aioice objects."""
    problems: list[str] = []
    for owner, names in (
        (RTCRtpReceiver, ("_handle_rtp_packet", "_send_rtcp_pli")),
        (RTCRtpSender, ("_handle_rtcp_packet", "_send_keyframe", "_retransmit", "_send_rtcp")),
        (RTCPeerConnection, ("_RTCPeerConnection__createDtlsTransport",)),
    ):
        problems += [f"{owner.__name__}.{name}" for name in names if not hasattr(owner, name)]
    connection = aioice.ice.Connection(ice_controlling=False)
    problems += [
        f"aioice.Connection.{name}"
        for name in ICE_LITE_CONNECTION_ATTRIBUTES
        if not hasattr(connection, name)
    ]
    if getattr(aiortc.rtcpeerconnection, "RTCCertificate", None) is not RTCCertificate:
        problems.append("aiortc.rtcpeerconnection.RTCCertificate")
    if getattr(aiortc.rtcrtpreceiver, "RemoteBitrateEstimator", None) not in (
        RemoteBitrateEstimator,
        LazyBandwidthEstimator,
    ):
        problems.append("aiortc.rtcrtpreceiver.RemoteBitrateEstimator")
    for name in ("SUCCEEDED",):
        if not hasattr(aioice.ice.CandidatePair.State, name):
            problems.append(f"aioice.CandidatePair.State.{name}")
    return problems


class LazyBandwidthEstimator(RemoteBitrateEstimator):
    """aiortc's receive-side bandwidth estimator (REMB), built on first use: aiortc calls `add`
    with every video packet that carries abs-send-time; any other read builds it too."""

    built = False

    def __init__(self) -> None:  # the real one is built by `_build`
        pass

    def _build(self) -> None:
        if not self.built:
            RemoteBitrateEstimator.__init__(self)
            self.built = True

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        self._build()
        return super().add(arrival_time_ms, abs_send_time, payload_size, ssrc)

    def __getattr__(self, name: str) -> Any:
        # Only for attributes not set yet: build, then answer (or fail as the real one would).
        if name.startswith("__") or self.built:
            raise AttributeError(name)
        self._build()
        return getattr(self, name)


class SpeakerRate:
    """Stands in for aiortc's receive-side bandwidth estimator on a publisher's video receiver:
    the REMB it has aiortc send the speaker is always `ceiling_bps`, once a second.

    aiortc's estimator times each packet's arrival when the event loop gets to it, so a busy
    loop reads as a congested network: on an idle loopback link it told speakers anything from
    30 to 800 kbit/s, and their browsers followed. A browser's own loss-based control still
    lowers its rate on a lossy uplink (REMB only caps it); this caps it at the configured
    ceiling instead of at the loop's noise. Costs a comparison per packet, not an estimator."""

    __slots__ = ("_next_ms", "ceiling_bps", "ssrcs")

    def __init__(self, ceiling_bps: int) -> None:
        self.ceiling_bps = ceiling_bps
        self.ssrcs: dict[int, None] = {}
        self._next_ms = -1

    def add(
        self, arrival_time_ms: int, abs_send_time: int, payload_size: int, ssrc: int
    ) -> tuple[int, list[int]] | None:
        self.ssrcs[ssrc] = None
        if arrival_time_ms < self._next_ms:
            return None
        self._next_ms = arrival_time_ms + 1000
        return self.ceiling_bps, list(self.ssrcs)


def cap_speaker_rate(receiver: RTCRtpReceiver, ceiling_bps: int) -> None:
    """Have `receiver` (a publisher's video) tell the speaker `ceiling_bps` (`SpeakerRate`)."""
    receiver._RTCRtpReceiver__remote_bitrate_estimator = SpeakerRate(ceiling_bps)  # type: ignore[attr-defined]


def defer_bandwidth_estimators() -> None:
    """Have aiortc's receivers, in this process, build their bandwidth estimator on their first
    packet (`LazyBandwidthEstimator`): a viewer's send-only m-lines never need one."""
    aiortc.rtcrtpreceiver.RemoteBitrateEstimator = LazyBandwidthEstimator  # type: ignore[misc]


class ServerCertificate(RTCCertificate):
    """A DTLS certificate shared by a MediaServer's peer connections; its fingerprints (hashed
    into every SDP the server writes) are computed once."""

    _fingerprints: list[RTCDtlsFingerprint] | None = None

    def getFingerprints(self) -> list[RTCDtlsFingerprint]:
        if self._fingerprints is None:
            self._fingerprints = super().getFingerprints()
        return list(self._fingerprints)


class _Given:
    """Stands in for RTCCertificate while a server peer connection is made: its one
    `generateCertificate` call gets the shared certificate."""

    def __init__(self, certificate: RTCCertificate) -> None:
        self.certificate = certificate

    def generateCertificate(self) -> RTCCertificate:
        return self.certificate


_certificate_lock = threading.Lock()


def server_peer_connection(
    configuration: RTCConfiguration, certificate: RTCCertificate
) -> RTCPeerConnection:
    """A peer connection that uses `certificate` rather than generating its own (a key pair and a
    signature: about a millisecond of CPU per connection). aiortc's constructor asks the
    `RTCCertificate` of its module for one, synchronously: that name is `certificate`'s for the
    duration of the call."""
    with _certificate_lock:
        aiortc.rtcpeerconnection.RTCCertificate = _Given(certificate)  # type: ignore[misc,assignment]
        try:
            return RTCPeerConnection(configuration)
        finally:
            aiortc.rtcpeerconnection.RTCCertificate = RTCCertificate  # type: ignore[misc]


def sender_ssrc(sender: RTCRtpSender) -> int:
    """The SSRC a sender sends with (aiortc picks it; its RTCP uses it)."""
    return sender._ssrc  # type: ignore[no-any-return]


def name_sender_track(sender: RTCRtpSender, *, track_id: str, stream_id: str) -> None:
    """The track and stream ids a sender's m-line announces in the next offer (`a=msid`), without
    giving it a track (its IdleTrack stays: nothing is ever encoded)."""
    sender._track_id = track_id
    sender._stream_id = stream_id


def offered_direction(transceiver: RTCRtpTransceiver) -> str | None:
    """The direction the remote side's last offer gave this m-line, from the server's side."""
    return transceiver._offerDirection  # type: ignore[no-any-return]


def replace_dtls_transport_factory(
    pc: RTCPeerConnection, wrap: Callable[[RTCDtlsTransport], RTCDtlsTransport]
) -> None:
    """Pass every DTLS transport (and the ICE transport under it) `pc` creates through `wrap`."""
    create: Callable[[], RTCDtlsTransport] = pc._RTCPeerConnection__createDtlsTransport  # type: ignore[attr-defined]

    def create_wrapped() -> RTCDtlsTransport:
        return wrap(create())

    pc._RTCPeerConnection__createDtlsTransport = create_wrapped  # type: ignore[attr-defined]


def ice_connection(transport: RTCIceTransport) -> aioice.ice.Connection:
    """The aioice Connection behind an ICE transport (its gatherer's)."""
    return transport._connection


# --- ingest -------------------------------------------------------------------------------------

PacketSink = Callable[[RtpPacket], bool | None]
FrameSink = Callable[[JitterFrame], None]


class _ForwardingJitterBuffer:
    """Stands in for a receiver's JitterBuffer: forwards first, never releases a frame to decode."""

    __slots__ = ("_real", "_on_packet", "_on_frame")

    def __init__(self, real: JitterBuffer, on_packet: PacketSink, on_frame: FrameSink) -> None:
        self._real = real
        self._on_packet = on_packet
        self._on_frame = on_frame

    @property
    def capacity(self) -> int:
        return self._real.capacity

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        # An exception here would end the publisher's whole DTLS receive loop: contain it.
        try:
            keep = self._on_packet(packet)
        except Exception:
            logger.exception("forwarding an RTP packet failed")
            keep = True
        if keep is False:  # not the stream the recorder reassembles (a lower simulcast layer)
            return False, None
        pli_flag, frame = self._real.add(packet)
        if frame is not None:
            try:
                self._on_frame(frame)
            except Exception:
                logger.exception("recording a frame failed")
        return pli_flag, None


def hook_receiver(receiver: RTCRtpReceiver, on_packet: PacketSink, on_frame: FrameSink) -> None:
    """Route a publisher's received packets to `on_packet` and reassembled frames to `on_frame`
    (only of the packets for which `on_packet` did not return False)."""
    real = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    if isinstance(real, _ForwardingJitterBuffer):
        real = real._real
    receiver._RTCRtpReceiver__jitter_buffer = _ForwardingJitterBuffer(  # type: ignore[attr-defined]
        real, on_packet, on_frame
    )


def restart_jitter_buffer(receiver: RTCRtpReceiver) -> None:
    """Give a hooked receiver (`hook_receiver`) an empty jitter buffer: the stream it
    reassembles for the recorder moves to another simulcast layer (other sequence numbers)."""
    hooked = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    if isinstance(hooked, _ForwardingJitterBuffer):
        hooked._real = JitterBuffer(capacity=hooked._real.capacity, is_video=True)


def receive_simulcast(transceiver: RTCRtpTransceiver, extension_ids: dict[str, int]) -> None:
    """Have a publisher's video transceiver receive simulcast: the `rid` and repaired-`rid`
    header extensions the offer gave `extension_ids` (uri -> id) are negotiated (aiortc knows
    how to read both but never offers or answers them), and its receiver asks for lost packets
    of each layer's stream on its own (`_NacksPerStream`). Call between applying the offer and
    creating the answer."""
    known = {ext.uri for ext in transceiver._headerExtensions}
    for uri, number in sorted(extension_ids.items()):
        if uri not in known:
            transceiver._headerExtensions.append(
                RTCRtpHeaderExtensionParameters(id=number, uri=uri)
            )
    receiver = transceiver.receiver
    nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
    if nacks is not None and not isinstance(nacks, _NacksPerStream):
        receiver._RTCRtpReceiver__nack_generator = _NacksPerStream()  # type: ignore[attr-defined]


class _NacksPerStream:
    """Stands in for a receiver's NackGenerator when it receives several streams (simulcast):
    aiortc's keeps one highest sequence number for the receiver, so the layers' numbers, mixed,
    would read as thousands of lost packets. One generator per SSRC; `missing` is the one that
    took the last packet (the receiver NACKs that packet's SSRC with it)."""

    __slots__ = ("_streams", "missing")

    def __init__(self) -> None:
        self._streams: dict[int, NackGenerator] = {}
        self.missing: set[int] = set()

    def add(self, packet: RtpPacket) -> bool:
        generator = self._streams.get(packet.ssrc)
        if generator is None:
            if len(self._streams) >= 8:  # a publisher restarting its streams: forget old ones
                self._streams.clear()
            generator = self._streams[packet.ssrc] = NackGenerator()
        missed = generator.add(packet)
        self.missing = generator.missing
        return missed


def route_by_mid(transport: RTCDtlsTransport) -> None:
    """Have a publisher's DTLS transport route packets from SSRCs no m-line declared by their
    MID header extension. Simulcast declares no SSRCs, and a camera and a screen share have the
    same payload types, so aiortc's router (by SSRC, else by a payload type only one m-line has)
    drops every layer's packets. A browser puts the MID (and the `rid`) in a stream's first
    packets; its SSRC is learned from them. A retransmission stream names the layer it repairs
    (repaired-`rid`): the receiver is told which SSRC it carries, as an `a=ssrc-group:FID` would."""
    router = transport._rtp_router
    if getattr(router, "_dais_by_mid", False):
        return
    route = router.route_rtp
    ssrc_table = router.ssrc_table
    mid_table = router.mid_table
    by_rid: dict[tuple[int, str], int] = {}  # (id(receiver), rid) -> the layer's SSRC

    def route_rtp(packet: RtpPacket) -> Any:
        receiver = route(packet)
        extensions = packet.extensions
        if receiver is None and packet.ssrc not in ssrc_table and extensions.mid is not None:
            receiver = mid_table.get(extensions.mid)
            if receiver is None:
                return None
            ssrc_table[packet.ssrc] = receiver
        if receiver is not None:
            if extensions.rtp_stream_id is not None:
                by_rid[(id(receiver), extensions.rtp_stream_id)] = packet.ssrc
            elif extensions.repaired_rtp_stream_id is not None:
                repaired = by_rid.get((id(receiver), extensions.repaired_rtp_stream_id))
                if repaired is not None:
                    receiver._RTCRtpReceiver__rtx_ssrc[packet.ssrc] = repaired  # type: ignore[attr-defined]
        return receiver

    router.route_rtp = route_rtp  # type: ignore[method-assign]
    router._dais_by_mid = True  # type: ignore[attr-defined]


async def request_keyframe_upstream(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Send an RTCP PLI for `media_ssrc` to the publisher behind `receiver`."""
    await receiver._send_rtcp_pli(media_ssrc)


def codec_for_payload_type(
    transceiver: RTCRtpTransceiver, payload_type: int
) -> RTCRtpCodecParameters | None:
    for codec in transceiver._codecs:
        if codec.payloadType == payload_type:
            return codec
    return None


# --- egress -------------------------------------------------------------------------------------


class IdleTrack(MediaStreamTrack):
    """A track whose recv() never returns: the sender's encode loop waits on it forever."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        await asyncio.shield(self._ended)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if not self._ended.done():
            self._ended.set_result(None)


def hook_sender(
    sender: RTCRtpSender,
    on_keyframe_request: Callable[[], None],
    on_nack: Callable[[int], None],
    on_estimate: Callable[[int], None] | None = None,
    on_round_trip: Callable[[float], None] | None = None,
) -> None:
    """Send a viewer's PLI/FIR to `on_keyframe_request`, its NACKed sequence numbers to
    `on_nack`, the bitrate its REMB gives for this sender's stream to `on_estimate`, and each
    round trip its receiver reports give (seconds; aiortc keeps only a smoothed one, which
    hides a queue growing) to `on_round_trip`."""

    async def retransmit(sequence_number: int) -> None:
        on_nack(sequence_number)

    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]
    sender._retransmit = retransmit  # type: ignore[method-assign]
    if on_estimate is None:
        return
    handle = sender._handle_rtcp_packet

    async def handle_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                pass  # another application's feedback, or a malformed REMB
            else:
                if sender._ssrc in ssrcs:
                    on_estimate(bitrate)
        elif on_round_trip is not None and isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            # Any of the last few Sender Reports (`fresh_sender_reports` keeps their times):
            # while a queue holds the latest one, the viewer's reports name an earlier one.
            sent = getattr(sender, "_dais_reports_sent", None) or {
                sender._RTCRtpSender__lsr: sender._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
            }
            for report in packet.reports:
                if report.ssrc == sender._ssrc and report.dlsr and report.lsr in sent:
                    on_round_trip(time.time() - sent[report.lsr] - report.dlsr / 65536)
        await handle(packet)

    sender._handle_rtcp_packet = handle_rtcp  # type: ignore[method-assign]


def fresh_sender_reports(sender: RTCRtpSender, clock_rate: int) -> None:
    """Make each Sender Report the sender sends say the time it is sent, with the RTP timestamp
    of that instant (extrapolated at `clock_rate` from the packet `note_sent` last gave).

    `note_sent` gives the NTP time of a packet every 32 packets, and aiortc reports that as is,
    so a slow stream sent two or three reports with one NTP time: the receiver's reports then
    named a report that could be either, and their round trips came out 0.6 s too long or
    negative. With each report's own time they are exact (streaming/link_estimate.py reads
    them to see a viewer's queue grow)."""
    send = sender._send_rtcp
    # The last reports' middle 32 bits of NTP time -> when each was sent (hook_sender reads it).
    reports_sent: dict[int, float] = {}
    sender._dais_reports_sent = reports_sent  # type: ignore[attr-defined]

    async def send_rtcp(packets: list[Any]) -> None:
        for packet in packets:
            if isinstance(packet, RtcpSrPacket) and packet.ssrc == sender._ssrc:
                info = packet.sender_info
                now = ntp_time_now()
                ticks = ((now - info.ntp_timestamp) & 0xFFFFFFFFFFFFFFFF) * clock_rate >> 32
                if ticks < clock_rate * 60:  # a last packet of over a minute ago: as it was
                    info.rtp_timestamp = (info.rtp_timestamp + ticks) & 0xFFFFFFFF
                    info.ntp_timestamp = now
                    lsr = (now >> 16) & 0xFFFFFFFF
                    sender._RTCRtpSender__lsr = lsr  # type: ignore[attr-defined]
                    sender._RTCRtpSender__lsr_time = reports_sent[lsr] = time.time()  # type: ignore[attr-defined]
                    if len(reports_sent) > 8:
                        del reports_sent[next(iter(reports_sent))]
        await send(packets)

    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


def send_sender_report(sender: RTCRtpSender) -> asyncio.Task[None]:
    """Send a Sender Report now, beside aiortc's own (one every 0.5-1.5 s): a probe wants a
    round trip more often than that (streaming/link_estimate.py). The caller keeps the task."""
    report = RtcpSrPacket(
        ssrc=sender._ssrc,
        sender_info=RtcpSenderInfo(
            ntp_timestamp=sender._RTCRtpSender__ntp_timestamp,  # type: ignore[attr-defined]
            rtp_timestamp=sender._RTCRtpSender__rtp_timestamp,  # type: ignore[attr-defined]
            packet_count=sender._RTCRtpSender__packet_count & 0xFFFFFFFF,  # type: ignore[attr-defined]
            octet_count=sender._RTCRtpSender__octet_count & 0xFFFFFFFF,  # type: ignore[attr-defined]
        ),
    )
    return asyncio.get_running_loop().create_task(sender._send_rtcp([report]))


def ntp_time_now() -> int:
    """Now as a 64-bit NTP timestamp (RFC 3550 section 4)."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


_NTP_EPOCH_OFFSET = 2208988800


def ask_for_opus_fec(transceiver: RTCRtpTransceiver) -> None:
    """Answer a publisher's Opus with `useinbandfec=1`: its browser then sends in-band forward
    error correction (each packet carries a coarse copy of the one before), so a viewer's
    decoder recovers a lost packet without a retransmission. Call between applying the offer
    and creating the answer (aiortc answers with its own codec parameters, which have none)."""
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters["useinbandfec"] = 1


def sender_rtt(sender: RTCRtpSender) -> float | None:
    """The round trip to the viewer in seconds, from its receiver reports (None before one)."""
    rtt: float | None = sender._RTCRtpSender__rtt  # type: ignore[attr-defined]
    return rtt


def negotiated_extensions(transceiver: RTCRtpTransceiver) -> dict[str, int]:
    """Header extension URI -> negotiated id for this transceiver's m-line."""
    return {ext.uri: ext.id for ext in transceiver._headerExtensions}


def compatible_payload_type(transceiver: RTCRtpTransceiver, codec: RTCRtpCodecParameters) -> int:
    """The viewer's payload type for `codec`, or -1 when the viewer did not accept that codec."""
    for candidate in transceiver._codecs:
        if is_codec_compatible(candidate, codec) and candidate.payloadType is not None:
            return candidate.payloadType
    return -1


def rtx_stream(sender: RTCRtpSender) -> tuple[int, int] | None:
    """The SSRC and payload type of the retransmission stream (RFC 4588) the viewer negotiated
    for this sender (None: it negotiated none)."""
    payload_type: int | None = sender._RTCRtpSender__rtx_payload_type  # type: ignore[attr-defined]
    return None if payload_type is None else (sender._rtx_ssrc, payload_type)


def sendable(sender: RTCRtpSender) -> bool:
    dtls = sender._RTCRtpSender__transport  # type: ignore[attr-defined]
    return dtls._state is CONNECTED


class SrtpBinding(NamedTuple):
    """pylibsrtp's cffi binding: its `ffi` and the libsrtp functions (`lib`)."""

    ffi: Any
    lib: Any


def load_srtp_binding() -> SrtpBinding | None:
    """pylibsrtp's private cffi binding, imported on first use (Python's import cache makes later
    calls cheap); None when it cannot be loaded or no longer has what RtpOutput and the C fan-out
    use. Then both fall back to the public `Session.protect`, and the C fan-out is off."""
    try:
        from pylibsrtp._binding import ffi, lib
    except ImportError:
        return None
    if not all(hasattr(ffi, name) for name in ("new", "cast", "addressof", "typeof", "getctype")):
        return None
    if not hasattr(lib, "srtp_protect"):
        return None
    return SrtpBinding(ffi, lib)


def srtp_protect_address() -> int | None:
    """The address of libsrtp's `srtp_protect` inside pylibsrtp, for the C fan-out; None when
    pylibsrtp's binding cannot be loaded or no longer declares it with libsrtp 2's signature (the
    C fan-out is then not used: calling it with the wrong arguments would crash)."""
    binding = load_srtp_binding()
    if binding is None:
        return None
    ffi = binding.ffi
    try:
        function = ffi.addressof(binding.lib, "srtp_protect")
        if ffi.getctype(ffi.typeof(function)) != _SRTP_PROTECT_SIGNATURE:
            return None
        return int(ffi.cast("uintptr_t", function))
    except (AttributeError, TypeError):
        return None


class NativeTarget(NamedTuple):
    """What the C fan-out needs to send to one viewer, and what it checks is still current."""

    dtls: Any
    nominated: dict[int, Any]
    pair: Any
    session: pylibsrtp.Session
    context: int  # srtp_t
    fd: int
    host: str
    port: int


class RtpOutput:
    """The fast path from the forwarder to one viewer's socket, for one sender.

    SRTP-protects and sends one RTP packet without awaiting: `send` at once, or `protect_into` a
    batch that the caller sends afterwards (`PublishedTrack` protects for every viewer, then sends
    in one loop). What it sends with (the DTLS transport, its SRTP session, the nominated ICE pair's
    socket and the viewer's address) is cached and looked up again whenever the sender's transport,
    its state or the nominated pair changes: three identity checks a packet. SRTP runs libsrtp's
    `srtp_protect` on the session's own scratch buffer, as `pylibsrtp.Session.protect` does but
    without its per-call allocation and checks, inlined here (a Python call a packet is ~0.1 us).
    With asyncio's selector loop the transport is bypassed and its socket written directly (its
    `sendto` costs ~0.7 us more than the syscall), which is safe because nothing else queues RTP
    on it: when the socket would block the packet is dropped, as a congested network would. Any
    other loop's transport (uvloop's has no `_sock`; its `sendto` costs what the syscall does) is
    used as is.
    """

    __slots__ = (
        "_sender",
        "_dtls",
        "_nominated",
        "_pair",
        "_sendto",
        "_address",
        "_session",
        "_cdata",
        "_buffer",
        "_length",
        "_context",
        "_limit",
        "_srtp_protect",
        "_binding",
        "_transport",
        "generation",
    )

    def __init__(self, sender: RTCRtpSender) -> None:
        self._sender = sender
        self._dtls: Any = None
        self._nominated: dict[int, Any] = {}
        self._pair: Any = None
        self._sendto: Callable[[bytes, Any], Any] = _no_sendto
        self._address: Any = None
        self._session: pylibsrtp.Session | None = None
        self._cdata: Any = None
        self._buffer: Any = None
        self._context: Any = None
        self._limit = 0
        # pylibsrtp's binding for the in-place path (None: only the public Session.protect).
        self._binding = load_srtp_binding()
        self._length: Any = None if self._binding is None else self._binding.ffi.new("int *")
        self._srtp_protect: Any = None if self._binding is None else self._binding.lib.srtp_protect
        self._transport: Any = None
        self.generation = 0  # counts refreshes: what native_target() returns may have changed

    def send(self, data: bytes) -> bool:
        """Protect `data` and send it now (the path for single packets, e.g. retransmissions)."""
        batch: list[tuple[Any, bytes, Any]] = []
        if not self.protect_into(data, batch):
            return False
        sendto, protected, address = batch[0]
        try:
            sendto(protected, address)
        except OSError:
            # Would block, or the viewer's socket is gone: drop, like a network.
            return False
        return True

    def protect_into(self, data: bytes, batch: list[tuple[Any, bytes, Any]]) -> bool:
        """Like `send`, but append (sendto, protected packet, address) to `batch` to send later."""
        dtls = self._sender._RTCRtpSender__transport  # type: ignore[attr-defined]
        if (
            dtls is not self._dtls
            or dtls._state is not CONNECTED
            or self._nominated.get(1) is not self._pair
        ) and not self._refresh(dtls):
            return False
        size = len(data)
        if self._context is None:
            try:
                batch.append((self._sendto, self._session.protect(data), self._address))  # type: ignore[union-attr]
            except (ValueError, pylibsrtp.Error):
                return False
            return True
        if size > self._limit:
            return False
        length = self._length
        length[0] = size
        buffer = self._buffer
        buffer[0:size] = data
        if self._srtp_protect(self._context, self._cdata, length):
            return False
        batch.append((self._sendto, buffer[0 : length[0]], self._address))
        return True

    def _refresh(self, dtls: RTCDtlsTransport) -> bool:
        self._dtls = None  # until everything below is known good, re-check on every packet
        self._pair = None
        if dtls._state is not CONNECTED:
            return False
        nominated = dtls._transport._connection._nominated
        pair = nominated.get(1)
        transport = pair.protocol.transport if pair is not None else None
        if pair is None or transport is None:
            return False
        sock = getattr(transport, "_sock", None)
        if isinstance(sock, socket.socket) and sock.type == socket.SOCK_DGRAM:
            self._sendto = sock.sendto
        else:
            self._sendto = transport.sendto
        session = dtls._tx_srtp
        if session is None:
            return False
        if session is not self._session:
            self._session = session
            # pylibsrtp's scratch buffer and context (check_internals() verifies they exist);
            # without them, the public (slower) Session.protect.
            cdata = getattr(session, "_cdata", None)
            srtp = getattr(session, "_srtp", None)
            if (
                self._binding is None
                or cdata is None
                or srtp is None
                or getattr(session, "_buffer", None) is None
            ):
                self._context = None
            else:
                self._cdata = cdata
                self._buffer = session._buffer
                self._limit = len(cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN
                self._context = srtp[0]
        self._address = pair.remote_addr
        self._nominated = nominated
        self._pair = pair
        self._dtls = dtls
        self._transport = transport
        self.generation += 1
        return True

    def native_target(self) -> NativeTarget | None:
        """Where the C fan-out may send for this sender, as of the last refresh; None if it cannot
        (not connected, pylibsrtp's internals unavailable, a socket without a descriptor, or an
        address that is not numeric)."""
        if (
            self._dtls is None
            or self._context is None
            or self._transport is None
            or self._binding is None
        ):
            return None
        sock = self._transport.get_extra_info("socket")
        try:
            fd = sock.fileno() if sock is not None else -1
        except (OSError, ValueError):
            fd = -1
        address = self._address
        if fd < 0 or not isinstance(address, tuple) or len(address) < 2:
            return None
        return NativeTarget(
            dtls=self._dtls,
            nominated=self._nominated,
            pair=self._pair,
            session=self._session,  # type: ignore[arg-type]
            context=int(self._binding.ffi.cast("uintptr_t", self._context)),
            fd=fd,
            host=str(address[0]),
            port=int(address[1]),
        )


def _no_sendto(data: bytes, address: Any) -> None:
    raise OSError("not connected")


def note_sent(
    sender: RTCRtpSender, ntp_time: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """Keep the sender's RTCP Sender Report counters in step with what we sent for it."""
    sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
    sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]
    sender._RTCRtpSender__packet_count = packets  # type: ignore[attr-defined]
    sender._RTCRtpSender__octet_count = octets  # type: ignore[attr-defined]
