"""The RTP forwarder: a published track fans its encoded packets out to viewer slots.

A `PublishedTrack` is one track a speaker sends (mic, camera or screen). A `ViewerSlot` is one
sendonly transceiver on a viewer's peer connection. A slot is bound to one published track at a
time and rewrites each packet's SSRC, payload type, sequence number and timestamp so that, seen
from the viewer, its stream stays continuous when the slot switches tracks (a speaker reconnects,
or a slot is reused for another speaker). Video slots start on a keyframe and ask for one. The
numbering is the slot's `RtpMunger` (streaming/munger.py); the bytes after the 12-byte header
follow its `HeaderLayout` (streaming/header_layout.py).

Two paths send a packet to a slot. Every slot starts on the Python path (`ViewerSlot.forward`),
which makes every decision: payload type, first keyframe, sequence/timestamp offsets, whether the
transport is up. Once a slot has sent a packet that way and its transport can be written from C,
the track hands it, with what `ViewerSlot.native_parameters()` returns (nothing else of the slot
is read), to its `Fanout` (streaming/_fanout.c), which from then on rewrites, protects and
sends that slot's copy of each packet with no Python work per viewer. Anything that changes the
slot's decisions (its source, its negotiation, the source's payload type, its transport) takes it
back to the Python path, which promotes it again when it is steady. Without the C extension (no C
compiler at install) every slot stays on the Python path, which sends the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from . import aiortc_hooks as hooks
from .header_layout import (
    NO_EXTENSIONS,
    RTP_HEADER,
    ForwardedPacket,
    HeaderLayout,
    layout_id,
    negotiated_layout,
    probe_packet,
)
from .link_estimate import LOSS_WINDOW_S, PROBE_MAX_S, REPORT_INTERVAL_S, ViewerLink
from .munger import OffsetHistory, RtpMunger
from .payloads import (
    Vp8Descriptor,
    keyframe_detector,
    vp8_descriptor,
    vp8_keyframe_size,
    vp8_rewrite,
    vp8_temporal_id,
)
from .retransmit import Retransmissions
from .simulcast import UP_SHARE, LayerChoice

try:
    from . import _fanout
except ImportError:  # built without a C compiler: the Python path does the same, more slowly
    _fanout = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

# At most one PLI per layer this often goes up to a publisher (a viewer switching layers waits
# for the next: at a second, a switch sometimes waited a second for it).
KEYFRAME_REQUEST_INTERVAL = 0.5
# Between requests for different layers of one publisher's video, at least this long: a browser
# answers a request with a keyframe on every layer, and ignores another within 300 ms of it
# (libwebrtc's minimum keyframe send interval), which left a viewer waiting seconds to switch.
PUBLISHER_REQUEST_SPACING = 0.35
HISTORY_SIZE = 512  # packets kept per track to answer viewers' NACKs
# Bytes a packet sent takes beyond its payload (RTP header, extensions, SRTP tag), roughly.
PACKET_OVERHEAD = 40
# A stream's rate is measured over windows this long (a viewer's retransmission budget, until
# it gives its own estimate, is a share of it).
RATE_WINDOW_S = 1.0
# A probe (streaming/link_estimate.py) pads a viewer's stream every this many seconds.
PADDING_INTERVAL_S = 0.05
PADDING_MAX = 255  # bytes of padding in one packet (its count is one byte)
NO_VP8 = (0, 0, -1, 0)  # what the C fan-out is given for a packet with no VP8 picture id
# A viewer's first seconds on a layered video, when round trips tell most (a link too slow for
# the layer it starts on fills its queue before its browser says anything).
FIRST_REPORTS_S = 3.0
PROBE_COPIES_S = 0.5  # a probe sends copies of the packets of this last while
PROBE_COPIES_MAX = 16
# About this share of a layer's rate is its base temporal layer (every fourth frame, each a
# reference for those between): what a fast step down keeps sending until the lower layer's
# keyframe, if the viewer's estimate carries it.
BASE_TEMPORAL_SHARE = 0.5
# A simulcast layer nobody has needed this long is paused at the publisher (dynacast).
DYNACAST_PAUSE_AFTER_S = 5.0

_pack_header = RTP_HEADER.pack
ntp_now = hooks.ntp_time_now


FrameListener = Callable[["PublishedTrack", hooks.JitterFrame], None]


class PublishedTrack:
    """A track received from a publisher, fanned out packet by packet to viewer slots."""

    def __init__(
        self,
        *,
        person_id: str,
        label: str,
        transceiver: RTCRtpTransceiver,
        rid: str | None = None,
        main: PublishedTrack | None = None,
    ) -> None:
        self.person_id = person_id
        self.label = label  # "mic", "camera" or "screen"
        # Simulcast (streaming/simulcast.py): the track a transceiver receives (`main`) is its
        # top layer; each lower layer is a PublishedTrack of its own, sharing the transceiver.
        # `layers` (lowest first) is one list for all of them; without simulcast, [self].
        self.rid = rid
        self.main: PublishedTrack = main or self
        self.layers: list[PublishedTrack] = [self] if main is None else main.layers
        self._by_ssrc: dict[int, PublishedTrack] = {}
        self._by_rid: dict[str, PublishedTrack] = {}
        # Viewer slots moving to this layer at its next keyframe (`ViewerSlot.reconsider`).
        self._switching: list[ViewerSlot] = []
        # The layer whose frames the recorder gets (the receiver's jitter buffer reassembles
        # one stream), the one it moves to at that layer's next keyframe, and when that was
        # last looked at.
        self.recorded: PublishedTrack = self
        self._record_next: PublishedTrack | None = None
        self._record_checked = 0.0
        # Dynacast (`_dynacast`): told which layers to send (None: nobody listens), the layers
        # sent as last told (all, to begin with), and since when each unneeded one has been.
        self.on_layers: Callable[[tuple[str, ...]], None] | None = None
        self._active: tuple[str, ...] = ()
        self._unwanted_since: dict[int, float] = {}
        # The picture size of its last keyframe (VP8).
        self.size: tuple[int, int] | None = None
        self.kind = transceiver.kind
        self.transceiver = transceiver
        self.receiver: RTCRtpReceiver = transceiver.receiver
        self.ssrc: int | None = None
        self.codec_name: str | None = None
        self.clock_rate = 90000 if self.kind == "video" else 48000
        self.packets_received = 0
        self.closed = False
        self._slots: list[ViewerSlot] = []
        self._frame_listeners: list[FrameListener] = []
        self._history: list[ForwardedPacket | None] = [None] * HISTORY_SIZE
        self._payload_type = -1
        self._is_keyframe_start: Callable[[bytes], bool] = lambda payload: True
        self._last_keyframe_request = -KEYFRAME_REQUEST_INTERVAL
        # The last request to the publisher for any of its layers (on the main track).
        self._last_publisher_request = -PUBLISHER_REQUEST_SPACING
        self._pending_request: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._native = NativeViewers.create()  # the slots sent to from C (None: no C fan-out)
        self._last_arrival = 0.0
        self.last_forwarded: ForwardedPacket | None = None
        self._is_vp8 = False
        # Whether it comes in temporal layers (a VP8 packet of a layer above the base seen).
        self.temporal = False
        # The picture id and TL0PICIDX of its last VP8 packet (a viewer leaving it goes on from
        # them on its next source: ViewerSlot.vp8_next).
        self.last_vp8: Vp8Descriptor | None = None
        # The stream's rate over the last complete window (bits a second, payload and headers).
        self.bitrate_bps = 0.0
        # The same, smoothed over windows (a keyframe makes one window's rate jump): what a
        # viewer's choice of layer goes by (`rate_bps`).
        self.smoothed_bps = 0.0
        self._window_start = 0.0
        self._window_bytes = 0
        if main is None:
            hooks.hook_receiver(self.receiver, self._on_packet, self._on_frame)

    def receive_layers(self, rids: list[str]) -> None:
        """This transceiver receives simulcast: `rids`, lowest first; the last is this track."""
        self.rid = rids[-1]
        lower = [
            PublishedTrack(
                person_id=self.person_id,
                label=self.label,
                transceiver=self.transceiver,
                rid=rid,
                main=self,
            )
            for rid in rids[:-1]
        ]
        self.layers[:] = [*lower, self]
        self._by_rid = {layer.rid: layer for layer in self.layers if layer.rid is not None}
        self.recorded = self
        self._active = tuple(rids)

    def rate_bps(self, now: float) -> float:
        """The stream's smoothed rate (0 before its first window ends); -1 when nothing came
        for two windows (a layer paused, or never sent)."""
        if not self._last_arrival or now - self._last_arrival >= 2 * RATE_WINDOW_S:
            return -1.0
        return self.smoothed_bps

    # -- ingest: called synchronously from aiortc's receive loop for every packet -----------------

    def _on_packet(self, packet: hooks.RtpPacket) -> bool:
        """A packet of this transceiver; True if it is this track's (the recorder's) stream."""
        if not self._by_rid:
            self._ingest(packet)
            return True
        layer = self._by_ssrc.get(packet.ssrc)
        if layer is None:
            rid = packet.extensions.rtp_stream_id
            layer = self._by_rid.get(rid) if rid is not None else None
            if layer is None:
                return False  # a stream no layer was negotiated for
            if len(self._by_ssrc) >= 16:  # a publisher restarting its streams: forget old ones
                self._by_ssrc.clear()
            self._by_ssrc[packet.ssrc] = layer
        if layer is self._record_next and layer._is_keyframe_start(packet.payload):
            # The recorder's stream moves to this layer from its keyframe on.
            self.recorded, self._record_next = layer, None
            hooks.restart_jitter_buffer(self.receiver)
        layer._ingest(packet)
        if not self._record_checked:  # the layers' first packets: look once all have begun
            self._record_checked = layer._last_arrival
        elif layer._last_arrival - self._record_checked >= RATE_WINDOW_S:
            self._follow_best_layer(layer._last_arrival)
        return layer is self.recorded

    def _follow_best_layer(self, now: float) -> None:
        """Record the best layer arriving: a browser short of uplink, or of camera resolution,
        stops sending its top layers (Chromium starts with the lowest and adds the others as its
        estimate grows), and the recorder must not be left with nothing."""
        self._record_checked = now
        self._dynacast(now)
        for layer in self.layers:
            # Each viewer looks again at what fits: a layer that stopped (its speaker's uplink
            # or camera can no longer carry it) must not leave its viewers frozen, and a viewer
            # whose browser says little (REMB comes when its estimate changes) still steps up.
            for slot in layer.viewer_slots():
                slot.reconsider()
        arriving = [layer for layer in self.layers if layer.rate_bps(now) >= 0]
        best = arriving[-1] if arriving else self.recorded
        if best is self.recorded:
            self._record_next = None
        elif best is not self._record_next:
            self._record_next = best
            best.request_keyframe()

    def _dynacast(self, now: float) -> None:
        """Tell the publisher (`on_layers`) which layers to send: those a viewer gets, is moving
        to, or would step up to next, and always the lowest (where any viewer falls) and the top
        (what is recorded). A layer is paused once nobody has needed it for
        `DYNACAST_PAUSE_AFTER_S`, and resumed as soon as somebody does."""
        if self.on_layers is None:
            return
        layers = self.layers
        top = len(layers) - 1
        wanted = {0, top}
        for index, layer in enumerate(layers):
            if layer._switching:
                wanted.add(index)
            if layer.slot_count:
                wanted.update((index, min(index + 1, top)))
        for index in wanted:
            self._unwanted_since.pop(index, None)
        for index in range(len(layers)):
            if index not in wanted:
                self._unwanted_since.setdefault(index, now)
        active = tuple(
            layer.rid or ""
            for index, layer in enumerate(layers)
            if now - self._unwanted_since.get(index, now) < DYNACAST_PAUSE_AFTER_S
        )
        if active != self._active:
            self._active = active
            self.on_layers(active)

    def _ingest(self, packet: hooks.RtpPacket) -> None:
        if self.closed or not packet.payload:
            return  # padding (a browser probing its uplink) carries nothing for viewers
        held = self._history[packet.sequence_number % HISTORY_SIZE]
        if (
            held is not None
            and held.sequence_number == packet.sequence_number
            and held.payload_type == packet.payload_type
            and self.ssrc == packet.ssrc
        ):
            # Sent again (a retransmission the speaker's browser also uses to probe its uplink,
            # hundreds of kbit/s while its estimate grows): viewers have it, or ask us for it.
            return
        self.packets_received += 1
        if packet.payload_type != self._payload_type:
            self._learn_codec(packet.payload_type)
        if self.ssrc != packet.ssrc:
            first = self.ssrc is None
            self.ssrc = packet.ssrc
            if first and self._slots:
                self.request_keyframe()
        extensions = packet.extensions
        abs_send_time = extensions.abs_send_time
        audio_level = extensions.audio_level
        payload = packet.payload
        forwarded = ForwardedPacket(
            packet.sequence_number,
            packet.timestamp,
            packet.marker,
            packet.payload_type,
            payload,
            None if abs_send_time is None else abs_send_time.to_bytes(3, "big"),
            None
            if audio_level is None
            else bytes(((0x80 if audio_level[0] else 0) | (audio_level[1] & 0x7F),)),
            self._is_keyframe_start(payload),
            ntp_now(),
            vp8_descriptor(payload) if self._is_vp8 else None,
            vp8_temporal_id(payload) if self._is_vp8 else -1,
        )
        if forwarded.temporal_id > 0:
            self.temporal = True
        if forwarded.vp8 is not None:
            self.last_vp8 = forwarded.vp8
        self._history[packet.sequence_number % HISTORY_SIZE] = forwarded
        self.last_forwarded = forwarded
        if forwarded.keyframe_start and self.kind == "video":
            size = vp8_keyframe_size(payload) if self.codec_name == "VP8" else None
            if size is not None and size != self.size:
                logger.info(
                    "%s's %s (layer %s) is %dx%d", self.person_id, self.label, self.rid, *size
                )
                self.size = size
        if forwarded.keyframe_start and self._pending_request is not None:
            self._pending_request.cancel()  # came anyway (another layer's request brought it)
            self._pending_request = None
        if self._switching and forwarded.keyframe_start:
            switching, self._switching = self._switching, []
            for slot in switching:
                slot.switched(self)  # joins this layer's slots: this packet starts it
        arrival = self._last_arrival = forwarded.arrival
        self._window_bytes += len(payload) + PACKET_OVERHEAD
        if arrival - self._window_start >= RATE_WINDOW_S:
            if self._window_start:
                rate = self.bitrate_bps = self._window_bytes * 8 / (arrival - self._window_start)
                smoothed = self.smoothed_bps
                self.smoothed_bps = rate if not smoothed else 0.7 * smoothed + 0.3 * rate
            self._window_start, self._window_bytes = arrival, 0
        native = self._native
        if native is not None and native.slots:
            dropped = native.send(forwarded)
            if dropped is not None:  # their transport changed or closed: back to the Python path
                for slot, counters in dropped:
                    slot.left_native(counters, self._last_arrival)
                    if slot.source is self:
                        self.add_slot(slot)
        if self._slots:
            fan_out(self._slots, forwarded)

    def _on_frame(self, frame: hooks.JitterFrame) -> None:
        for listener in self._frame_listeners:
            listener(self, frame)

    def _learn_codec(self, payload_type: int) -> None:
        # Every slot picks its payload type for the new codec on the Python path.
        self._all_leave_native()
        codec = hooks.codec_for_payload_type(self.transceiver, payload_type)
        self._payload_type = payload_type
        self.codec_name = codec.name if codec else None
        self._is_keyframe_start = keyframe_detector(self.codec_name or "")
        self._is_vp8 = self.kind == "video" and self.codec_name == "VP8"

    def codec(self, payload_type: int):  # type: ignore[no-untyped-def]
        return hooks.codec_for_payload_type(self.transceiver, payload_type)

    def history(self, sequence_number: int) -> ForwardedPacket | None:
        packet = self._history[sequence_number % HISTORY_SIZE]
        if packet is not None and packet.sequence_number == sequence_number:
            return packet
        return None

    # -- subscribers ----------------------------------------------------------------------------

    def add_slot(self, slot: ViewerSlot) -> None:
        if slot not in self._slots:
            # Copy-on-write: the ingest loop may be iterating the current list.
            self._slots = [*self._slots, slot]

    def remove_slot(self, slot: ViewerSlot) -> None:
        if slot.native:
            self.leave_native(slot)
        if slot in self._slots:
            self._slots = [s for s in self._slots if s is not slot]

    def viewer_slots(self) -> list[ViewerSlot]:
        """Every slot this track feeds, on the Python path or from C."""
        native = self._native.slots if self._native is not None else []
        return [*self._slots, *native]

    @property
    def slot_count(self) -> int:
        return len(self._slots) + self.native_slot_count

    @property
    def native_slot_count(self) -> int:
        return len(self._native.slots) if self._native is not None else 0

    # -- the C fan-out ----------------------------------------------------------------------------

    def join_native(self, slot: ViewerSlot, parameters: NativeParameters) -> bool:
        """Send to `slot` from C from the next packet on (it left the Python path steady)."""
        if (
            self._native is None
            or slot not in self._slots
            or not self._native.join(slot, parameters)
        ):
            return False
        self._slots = [s for s in self._slots if s is not slot]
        return True

    def leave_native(self, slot: ViewerSlot) -> None:
        """Take `slot` off the C fan-out (it stays a slot of this track only if re-added)."""
        if self._native is not None:
            counters = self._native.leave(slot)
            if counters is not None:
                slot.left_native(counters, self._last_arrival)

    def native_counters(self, slot: ViewerSlot) -> tuple[int, int, int, int] | None:
        return self._native.counters(slot) if self._native is not None else None

    def _all_leave_native(self) -> None:
        if self._native is None or not self._native.slots:
            return
        for slot, counters in self._native.clear():
            slot.left_native(counters, self._last_arrival)
            if slot.source is self:
                self.add_slot(slot)

    def add_frame_listener(self, listener: FrameListener) -> None:
        if listener not in self._frame_listeners:
            self._frame_listeners = [*self._frame_listeners, listener]

    def remove_frame_listener(self, listener: FrameListener) -> None:
        self._frame_listeners = [x for x in self._frame_listeners if x != listener]

    # -- keyframes ------------------------------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per KEYFRAME_REQUEST_INTERVAL.

        A request inside the interval is not dropped but deferred to the end of it, so a viewer
        who joins just after another still gets a keyframe within about a second.
        """
        if self.kind != "video" or self.closed:
            return
        now = self._loop.time()
        wait = (
            max(
                self._last_keyframe_request + KEYFRAME_REQUEST_INTERVAL,
                self.main._last_publisher_request + PUBLISHER_REQUEST_SPACING,
            )
            - now
        )
        if wait <= 0:
            self._send_keyframe_request()
        elif self._pending_request is None:
            self._pending_request = self._loop.call_later(wait, self._send_keyframe_request)

    def _send_keyframe_request(self) -> None:
        self._pending_request = None
        if self.closed or self.ssrc is None:
            return
        self._last_keyframe_request = self.main._last_publisher_request = self._loop.time()
        task = self._loop.create_task(hooks.request_keyframe_upstream(self.receiver, self.ssrc))
        task.add_done_callback(_log_task_error)

    def await_keyframe(self, slot: ViewerSlot) -> None:
        """`slot` moves to this layer at its next keyframe (asked for now)."""
        if slot not in self._switching:
            self._switching = [*self._switching, slot]
        self.request_keyframe()

    def forget_switch(self, slot: ViewerSlot) -> None:
        if slot in self._switching:
            self._switching = [s for s in self._switching if s is not slot]

    def close(self) -> None:
        if self.main is self:
            for layer in self.layers:
                if layer is not self:
                    layer.close()
        self.closed = True
        self._switching = []
        if self._pending_request is not None:
            self._pending_request.cancel()
            self._pending_request = None
        self._all_leave_native()
        for slot in self._slots:
            slot.source_closed(self)
        self._slots = []
        self._frame_listeners = []


def fan_out(slots: list[ViewerSlot], packet: ForwardedPacket) -> None:
    """Forward one packet to every slot: rewrite and SRTP-protect for each, then send them all.

    Protecting for every viewer first and then sending in one tight loop keeps the syscalls
    together: measured ~15% less CPU per forwarded packet than alternating protect and send.
    """
    batch: list[tuple[Callable[[bytes, object], object], bytes, object]] = []
    for slot in slots:
        try:
            slot.forward(packet, batch)
        except Exception:
            logger.exception("forwarding to a viewer failed")
    for sendto, data, address in batch:
        try:
            sendto(data, address)
        except OSError:  # would block, or the viewer's socket is gone: drop, like a network
            pass
        except Exception:  # anything else must not cost the viewers after this one their packet
            logger.exception("sending to a viewer failed")


@dataclass(frozen=True, slots=True)
class NativeParameters:
    """Everything the C fan-out needs to send to one slot: where (its transport, as of now), and
    the decisions the Python path made for it, which stay fixed while C sends."""

    target: hooks.NativeTarget
    sender: Any  # the RTCRtpSender whose transport and Sender Report figures C follows
    ssrc: int
    payload_type: int
    seq_offset: int
    ts_offset: int
    vp8_offsets: tuple[int, int]  # picture id, TL0PICIDX
    layout: HeaderLayout
    layout_id: int
    counters: tuple[int, int, int, int]  # packets, octets, last sequence number, last timestamp


class NativeViewers:
    """The slots of one track that its C fan-out (streaming/_fanout.c) sends to.

    Keeps the list of those slots, and the extension layouts their templates follow (by index: a
    slot's target names its layout by position in the templates each packet passes to C).
    """

    def __init__(self, fanout: Any) -> None:
        self._fanout = fanout
        self.slots: list[ViewerSlot] = []
        self._layouts: list[tuple[int, HeaderLayout]] = []

    @classmethod
    def create(cls) -> NativeViewers | None:
        """None when the C extension was not built, or pylibsrtp's binding cannot be loaded or
        its `srtp_protect` is not as expected."""
        if _fanout is None:
            return None
        address = hooks.srtp_protect_address()
        if address is None:
            return None
        return cls(_fanout.Fanout(address, hooks.CONNECTED, hooks.SENDER_ATTRIBUTES))

    def join(self, slot: ViewerSlot, parameters: NativeParameters) -> bool:
        layout_ids = [known for known, _ in self._layouts]
        if parameters.layout_id not in layout_ids:
            layout_ids.append(parameters.layout_id)
            self._layouts.append((parameters.layout_id, parameters.layout))
        index = layout_ids.index(parameters.layout_id)
        target = parameters.target
        packets, octets, last_seq, last_ts = parameters.counters
        joined = self._fanout.add(
            slot,
            parameters.sender,
            target.dtls,
            target.nominated,
            target.pair,
            target.session,
            target.context,
            target.fd,
            target.host,
            target.port,
            parameters.ssrc,
            parameters.payload_type,
            parameters.seq_offset,
            parameters.ts_offset,
            *parameters.vp8_offsets,
            index,
            packets,
            octets,
            last_seq,
            last_ts,
        )
        if joined:
            self.slots = [*self.slots, slot]
            slot.native = True
        return bool(joined)

    def leave(self, slot: ViewerSlot) -> tuple[int, int, int, int] | None:
        """Stop sending to `slot` from C; its counters (None if it was not sent to from C)."""
        counters = self._fanout.remove(slot)
        if counters is not None:
            self.slots = [s for s in self.slots if s is not slot]
        return counters

    def counters(self, slot: ViewerSlot) -> tuple[int, int, int, int] | None:
        return self._fanout.counters(slot)  # type: ignore[no-any-return]

    def clear(self) -> list[tuple[ViewerSlot, tuple[int, int, int, int]]]:
        self.slots = []
        return self._fanout.clear()  # type: ignore[no-any-return]

    def send(
        self, packet: ForwardedPacket
    ) -> list[tuple[ViewerSlot, tuple[int, int, int, int]]] | None:
        """Send `packet` to every slot; the slots dropped (transport changed or closed), if any."""
        template = packet.template
        layouts = [template(known, layout) for known, layout in self._layouts]
        length, picture_id, tl0_position, tl0 = packet.vp8 or NO_VP8
        dropped = self._fanout.send(
            packet.sequence_number,
            packet.timestamp,
            packet.ntp_time,
            packet.size,
            layouts,
            length,
            picture_id,
            tl0_position,
            tl0,
        )
        if dropped is not None:
            gone = {id(slot) for slot, _ in dropped}
            self.slots = [s for s in self.slots if id(s) not in gone]
        return dropped  # type: ignore[no-any-return]


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.warning("keyframe request failed: %r", task.exception())


class ViewerSlot:
    """One sendonly transceiver of a viewer's peer connection, fed by at most one PublishedTrack.

    The slot negotiates (reserve, release, what the viewer answered), maps the source's payload
    type to the viewer's, passes the viewer's feedback (PLI, NACK) to its source, and sends: on
    the Python path by `forward`, or by handing the C fan-out its `native_parameters()`. Sequence
    numbers and timestamps are its `munger`'s (streaming/munger.py); the bytes after the 12-byte
    header follow its `layout` (streaming/header_layout.py).
    """

    # Slots: attribute reads on the per-packet path are cheaper, and the object is smaller.
    __slots__ = (
        "_native_generation",
        "_switch_to",
        "_loss_start",
        "_loss_sent",
        "_loss_from",
        "_lost",
        "_padding",
        "_padding_bps",
        "_padding_stamp",
        "_padding_due",
        "_rtx_sequence_number",
        "_report",
        "_reporting",
        "_reports_until",
        "_source_since",
        "vp8_next",
        "vp8_offsets",
        "max_temporal",
        "_skipped_picture",
        "_picture_offsets",
        "link",
        "choice",
        "_octets_sent",
        "_output",
        "_packets_sent",
        "_source_pt",
        "clock_rate",
        "estimate_bps",
        "key",
        "kind",
        "layout",
        "layout_id",
        "munger",
        "native",
        "negotiated",
        "payload_type",
        "peer_slots",
        "retransmissions",
        "sender",
        "source",
        "ssrc",
        "track_id",
        "transceiver",
        "wanted_source",
    )

    def __init__(
        self, transceiver: RTCRtpTransceiver, *, peer_slots: list[ViewerSlot] | None = None
    ) -> None:
        self.transceiver = transceiver
        # Every slot of the viewer's connection (this one too): its estimate is for them all.
        self.peer_slots: list[ViewerSlot] = [self] if peer_slots is None else peer_slots
        self.kind = transceiver.kind
        self.sender = transceiver.sender
        self.ssrc: int = hooks.sender_ssrc(self.sender)
        self.clock_rate = 90000 if self.kind == "video" else 48000
        self.key: tuple[str, str] | None = None  # (publisher person_id, label) it is reserved for
        self.track_id: str | None = None
        self.negotiated = False  # the viewer has answered an offer with this slot sendonly
        self.source: PublishedTrack | None = None
        self.wanted_source: PublishedTrack | None = None
        self.native = False  # sent to from its source's C fan-out, not by forward()
        self.munger = RtpMunger(self.clock_rate)
        self.payload_type = -1  # the viewer's payload type for the source's codec (-1: none)
        self.layout: HeaderLayout = NO_EXTENSIONS
        self.layout_id = layout_id(self.layout)
        self._native_generation = -1  # the RtpOutput refresh last tried for the C fan-out
        self._packets_sent = 0
        self._octets_sent = 0
        self._source_pt = -1
        self._output = hooks.RtpOutput(self.sender)
        # Answers to the viewer's NACKs (streaming/retransmit.py), within a share of what its
        # link carries: its own estimate (REMB) once it sends one.
        self.retransmissions = Retransmissions()
        self.estimate_bps: int | None = None
        # Which simulcast layer of its track this viewer gets (streaming/simulcast.py), and the
        # one it moves to at that layer's next keyframe.
        self.choice = LayerChoice()
        self._switch_to: PublishedTrack | None = None
        # What the viewer's link carries beyond its browser's word (streaming/link_estimate.py):
        # the packets NACKed in the current loss window (the viewer's sequence numbers, each
        # counted once), the packets and octets sent before the window began, the last sequence
        # number sent before the previous one began (older ones were counted, or are NACKed
        # again), and the padding of a probe under way.
        self.link = ViewerLink()
        self._loss_start = 0.0
        self._loss_sent = (0, 0)
        self._loss_from: tuple[int, int] = (0, 0)
        self._lost: tuple[set[int], set[int]] = (set(), set())
        self._padding: asyncio.TimerHandle | None = None
        self._padding_bps = 0.0
        self._padding_stamp = 0.0
        self._padding_due = 0
        self._rtx_sequence_number = random.randrange(0, 1 << 16)
        # Sender Reports of its own while round trips matter (`_report_often`).
        self._report: asyncio.Task[None] | None = None
        self._reporting: asyncio.TimerHandle | None = None
        self._reports_until = 0.0
        self._source_since = 0.0  # when it last moved to its source (monotonic)
        # VP8 picture ids and TL0PICIDX continue across a switch as sequence numbers do (a
        # browser drops frames whose picture id is behind the last it decoded, and a layer's
        # ids are not another's): the offsets from its source's to the viewer's (0, 0 on its
        # first source), and the pair its next source starts from (None: none sent yet).
        self.vp8_offsets = (0, 0)
        self.vp8_next: tuple[int, int] | None = None
        # The highest temporal layer sent (None: all). While it is set the slot is on the
        # Python path, which skips the others' packets (`_skip`); `_move_to` clears it.
        self.max_temporal: int | None = None
        self._skipped_picture = -1  # the picture id of the last frame skipped
        # The picture id offset as it was for each of the viewer's sequence numbers (frames
        # skipped move it back): a retransmission carries the picture id first sent.
        self._picture_offsets = OffsetHistory()
        hooks.hook_sender(
            self.sender,
            self._on_keyframe_request,
            self._on_nack,
            self._on_estimate,
            self._on_round_trip,
        )
        hooks.fresh_sender_reports(self.sender, self.clock_rate)

    # -- negotiation ---------------------------------------------------------------------------

    def reserve(self, key: tuple[str, str], track_id: str, stream_id: str) -> None:
        """Dedicate this slot to a publisher's track; takes effect once the viewer answers."""
        self.key = key
        self.track_id = track_id
        self.negotiated = False
        hooks.name_sender_track(self.sender, track_id=track_id, stream_id=stream_id)
        self.transceiver.direction = "sendonly"

    def release(self) -> None:
        """Stop forwarding at once; the next offer marks the m-line inactive for reuse."""
        self.set_source(None)
        self.key = None
        self.track_id = None
        self.negotiated = False
        self.transceiver.direction = "inactive"

    def mark_negotiated(self) -> None:
        """The viewer answered: learn its payload types and extension ids, start forwarding."""
        if self.key is None:
            return
        if self.native and self.source is not None:  # its layout or payload type may change
            self.source.leave_native(self)
            self.source.add_slot(self)
        self.layout = negotiated_layout(
            hooks.negotiated_extensions(self.transceiver), self.transceiver.mid
        )
        self.layout_id = layout_id(self.layout)
        self._source_pt = -1
        self.negotiated = True
        self.set_source(self.wanted_source)

    # -- binding to a published track -----------------------------------------------------------

    def set_source(self, source: PublishedTrack | None) -> None:
        """Feed this slot from `source` (None: pause it); deferred until the viewer has answered.
        A simulcast track feeds it from the layer its `choice` picks."""
        self.wanted_source = source
        if not self.negotiated:
            return
        if source is not None:
            if self.source is not None and self.source.main is source.main:
                return  # on one of its layers already: the estimate moves it between them
            if len(source.layers) > 1:
                source = source.layers[self._choose(source)]
        self._move_to(source)

    def _choose(self, source: PublishedTrack) -> int:
        now = time.monotonic()
        rates = [layer.rate_bps(now) for layer in source.layers]
        estimate = self.link.estimate(now)
        if estimate is not None:
            # The viewer's estimate covers all it receives: what its other videos take now
            # (a screen share, another speaker's camera) is not this one's to spend.
            estimate = max(estimate - self._taken(now), 0.0)
        link = self.link
        return self.choice.choose(
            rates, estimate, now, congested=link.congested(now), settled=link.settled
        )

    def _taken(self, now: float) -> float:
        """What the viewer's other videos take of its link now."""
        return sum(
            max(slot.source.rate_bps(now), 0.0)
            for slot in self.peer_slots
            if slot is not self and slot.kind == "video" and slot.source is not None
        )

    def _move_to(self, source: PublishedTrack | None, *, ask: bool = True) -> None:
        if self._switch_to is not None:
            self._switch_to.forget_switch(self)
            self._switch_to = None
        if source is self.source:
            return
        if self.source is not None:
            self._leave_vp8(self.source)
            self.source.remove_slot(self)
        self.source = source
        self.munger.switch_source()
        self._source_pt = -1
        self._source_since = time.monotonic()
        self.link.settle(self._source_since)
        self.max_temporal = None
        self._skipped_picture = -1
        if source is not None:
            source.add_slot(self)
            if len(source.layers) > 1:
                self._report_often(FIRST_REPORTS_S)
            # Not yet connected: connected() asks instead, so the keyframe is not spent unseen.
            if ask and hooks.sendable(self.sender):
                source.request_keyframe()

    # -- counters (kept in C while the slot is on its source's C fan-out) ----------------------

    @property
    def packets_sent(self) -> int:
        return self.counters()[0]

    @property
    def octets_sent(self) -> int:
        return self.counters()[1]

    def counters(self) -> tuple[int, int, int, int]:
        """Packets and payload octets sent, and the last sequence number and timestamp sent."""
        if self.native and self.source is not None:
            counters = self.source.native_counters(self)
            if counters is not None:
                return counters
        munger = self.munger
        return self._packets_sent, self._octets_sent, munger.last_seq or 0, munger.last_ts

    # -- the C fan-out ------------------------------------------------------------------------

    def native_parameters(self) -> NativeParameters | None:
        """What the C fan-out needs to go on sending to this slot exactly as `forward` would;
        None when it cannot (no payload type or keyframe yet, or a transport C cannot write)."""
        if self.payload_type < 0 or self.munger.waiting_for_start or self.max_temporal is not None:
            return None
        target = self._output.native_target()
        if target is None:
            return None
        return NativeParameters(
            target=target,
            sender=self.sender,
            ssrc=self.ssrc,
            payload_type=self.payload_type,
            seq_offset=self.munger.seq_offset,
            ts_offset=self.munger.ts_offset,
            vp8_offsets=self.vp8_offsets,
            layout=self.layout,
            layout_id=self.layout_id,
            counters=self.counters(),
        )

    def left_native(self, counters: tuple[int, int, int, int], last_arrival: float) -> None:
        """Back on the Python path, continuing from what C sent."""
        self.native = False
        self._native_generation = -1
        packets, self._octets_sent, last_seq, last_ts = counters
        if packets:
            self._packets_sent = packets
        self.munger.resume(last_seq, last_ts, last_arrival, sent_any=bool(packets))

    def _try_native(self) -> None:
        self._native_generation = self._output.generation
        source = self.source
        if source is None:
            return
        parameters = self.native_parameters()
        if parameters is not None:
            source.join_native(self, parameters)

    def switched(self, layer: PublishedTrack) -> None:
        """`layer`'s keyframe has come: go on from it (called by the layer, before it forwards
        that packet, which starts this slot's stream again where it left off)."""
        if self._switch_to is layer:
            self._switch_to = None
            self._move_to(layer, ask=False)

    def source_closed(self, source: PublishedTrack) -> None:
        if self._switch_to is source:
            self._switch_to = None
        if self.source is source:
            self._leave_vp8(source)
            self.source = None
            self.munger.switch_source()
        if self.wanted_source is source:
            self.wanted_source = None

    def _leave_vp8(self, source: PublishedTrack) -> None:
        """Note the VP8 picture id and TL0PICIDX the next source starts from (one past the last
        sent from `source`: what it last received, seen through this slot's offsets)."""
        last = source.last_vp8
        if last is None or self.munger.waiting_for_start:
            return
        length, picture_id, _, tl0 = last
        mask = 0x7FFF if length == 2 else 0x7F
        self.vp8_next = (
            (picture_id + self.vp8_offsets[0] + 1) & mask,
            (tl0 + self.vp8_offsets[1] + 1) & 0xFF,
        )

    def _start_vp8(self, descriptor: Vp8Descriptor) -> None:
        """The stream starts again on this packet (a keyframe): map the source's picture ids and
        TL0PICIDX onto the viewer's, continuing from the last source's."""
        self._picture_offsets.clear()
        if self.vp8_next is None:
            self.vp8_offsets = (0, 0)
            return
        length, picture_id, _, tl0 = descriptor
        mask = 0x7FFF if length == 2 else 0x7F
        self.vp8_offsets = (
            (self.vp8_next[0] - picture_id) & mask,
            (self.vp8_next[1] - tl0) & 0xFF,
        )

    def _rest(
        self, packet: ForwardedPacket, rest: bytes, picture_offset: int | None = None
    ) -> bytes:
        """A template's bytes after the SSRC, with this viewer's VP8 picture id and TL0PICIDX
        (the picture id moved by `picture_offset` if given, else by the current offset)."""
        descriptor = packet.vp8
        picture_offset = self.vp8_offsets[0] if picture_offset is None else picture_offset
        if descriptor is None or (picture_offset, self.vp8_offsets[1]) == (0, 0):
            return rest
        length, picture_id, _, tl0 = descriptor
        mask = 0x7FFF if length == 2 else 0x7F
        start = len(rest) - packet.size
        payload = vp8_rewrite(
            rest[start:],
            descriptor,
            (picture_id + picture_offset) & mask,
            (tl0 + self.vp8_offsets[1]) & 0xFF,
        )
        return rest[:start] + payload

    def connected(self) -> None:
        """The viewer's transport is up: a video slot needs a keyframe to start."""
        if self.source is not None and self.munger.waiting_for_start:
            self.source.request_keyframe()

    # -- the per-packet path -----------------------------------------------------------------

    def forward(self, packet: ForwardedPacket, batch: list | None = None) -> None:  # type: ignore[type-arg]
        """Rewrite `packet` for this viewer and send it (or append the send to `batch`)."""
        if self.max_temporal is not None and packet.temporal_id > self.max_temporal:
            self._skip(packet)
            return
        if packet.payload_type != self._source_pt:
            self._select_payload_type(packet.payload_type)
        if self.payload_type < 0:
            return
        munger = self.munger
        if munger.waiting_for_start:
            if not packet.keyframe_start or not hooks.sendable(self.sender):
                return
            now = time.monotonic()
            munger.start(packet.sequence_number, packet.timestamp, now)
            if self._loss_start == 0.0:  # the first loss window starts with the first packet
                self._loss_start, self._loss_sent = now, self.counters()[:2]
            if packet.vp8 is not None:
                self._start_vp8(packet.vp8)
        # The hot path, once per viewer and packet: this slot's 12-byte header in front of the
        # packet's template for this slot's extension layout (built by the first slot needing it).
        # munger.munge() inlined: a call less per viewer and packet.
        template = packet.templates.get(self.layout_id) or packet.template(
            self.layout_id, self.layout
        )
        sequence_number = (packet.sequence_number + munger.seq_offset) & 0xFFFF
        timestamp = (packet.timestamp + munger.ts_offset) & 0xFFFFFFFF
        rest = template[2] if packet.vp8 is None else self._rest(packet, template[2])
        data = (
            _pack_header(
                template[0], template[1] | self.payload_type, sequence_number, timestamp, self.ssrc
            )
            + rest
        )
        if batch is None:
            if not self._output.send(data):
                return
        elif not self._output.protect_into(data, batch):
            return
        packets_sent = self._packets_sent = self._packets_sent + 1
        self._octets_sent += packet.size
        munger.sent(sequence_number, timestamp, packet.arrival)
        # For Sender Reports (an NTP/RTP timestamp pair from one packet, and the counters): on the
        # first packet and every 32nd; a report a second is all aiortc sends.
        if packets_sent & 31 == 1:
            hooks.note_sent(
                self.sender, packet.ntp_time, timestamp, packets_sent, self._octets_sent
            )
        # Steady, and a transport C can write: the C fan-out takes this slot from the next packet.
        if self._native_generation != self._output.generation and batch is not None:
            self._try_native()

    def _skip(self, packet: ForwardedPacket) -> None:
        """Not send `packet` (a temporal layer above `max_temporal`), and keep the viewer's
        sequence numbers and picture ids continuous without it: the frames the viewer gets then
        reference only frames it got (a temporal layer references only lower ones)."""
        if self.munger.waiting_for_start:
            return
        self.munger.skip()
        descriptor = packet.vp8
        if descriptor is not None and descriptor[1] != self._skipped_picture:
            self._skipped_picture = descriptor[1]
            mask = 0x7FFF if descriptor[0] == 2 else 0x7F
            before = self.vp8_offsets[0]
            self.vp8_offsets = ((before - 1) & mask, self.vp8_offsets[1])
            self._picture_offsets.change(
                self.munger.next_sequence_number(), before, self.vp8_offsets[0]
            )

    def keep_temporal(self, highest: int | None) -> None:
        """Send only temporal layers up to `highest` of the current source (None: all)."""
        if highest is not None and self.native and self.source is not None:
            self.source.leave_native(self)  # the Python path skips; C sends every packet
            self.source.add_slot(self)
        self.max_temporal = highest

    def _send(self, packet: ForwardedPacket, sequence_number: int) -> None:
        """Send `packet` again, as it was, as the viewer's `sequence_number` (a retransmission:
        no counters change)."""
        template = packet.template(self.layout_id, self.layout)
        timestamp = (packet.timestamp + self.munger.ts_offset) & 0xFFFFFFFF
        picture_offset = self._picture_offsets.at(sequence_number, self.vp8_offsets[0])
        self._output.send(
            _pack_header(
                template[0], template[1] | self.payload_type, sequence_number, timestamp, self.ssrc
            )
            + self._rest(packet, template[2], picture_offset)
        )

    def _select_payload_type(self, source_pt: int) -> None:
        self._source_pt = source_pt
        codec = self.source.codec(source_pt) if self.source is not None else None
        self.payload_type = (
            -1 if codec is None else hooks.compatible_payload_type(self.transceiver, codec)
        )

    # -- feedback from the viewer ------------------------------------------------------------

    def _on_keyframe_request(self) -> None:
        if self.source is not None:
            self.source.request_keyframe()

    def _on_nack(self, sequence_number: int) -> None:
        source = self.source
        if source is None or self.munger.waiting_for_start:
            return
        if self.kind == "video":
            # Counted once, and only if sent in this loss window or the one before: a browser
            # NACKs a packet again each round trip until it comes (or is given up).
            recent, before = self._lost
            if (
                sequence_number - self._loss_from[0]
            ) & 0xFFFF < 0x8000 and sequence_number not in before:
                recent.add(sequence_number)
            if self._close_loss_window(time.monotonic()):
                self.reconsider()
        packet = source.history(self.munger.source_sequence_number(sequence_number))
        if packet is None or packet.payload_type != self._source_pt:
            return
        if self.retransmissions.allow(
            sequence_number=packet.sequence_number,
            arrival=packet.arrival,
            size=packet.size + PACKET_OVERHEAD,
            now=time.monotonic(),
            rtt=hooks.sender_rtt(self.sender),
            rate_bps=self.estimate_bps or source.bitrate_bps,
        ):
            self._send(packet, sequence_number)

    def _on_estimate(self, bitrate: int) -> None:
        self.estimate_bps = bitrate
        self.link.remb(bitrate, time.monotonic())
        self.reconsider()

    def _on_round_trip(self, seconds: float) -> None:
        if self.kind != "video":
            return
        now = time.monotonic()
        sent = self._taken(now) + (max(self.source.rate_bps(now), 0.0) if self.source else 0.0)
        if self.link.round_trip(seconds, now, sent_bps=sent):
            self.reconsider()

    def _report_often(self, seconds: float) -> None:
        """Send the viewer a Sender Report every `REPORT_INTERVAL_S` for `seconds` (aiortc sends
        one every 0.5-1.5 s): each brings back a round trip (streaming/link_estimate.py)."""
        self._reports_until = max(self._reports_until, time.monotonic() + seconds)
        if self._reporting is None:
            self._reporting = asyncio.get_running_loop().call_later(
                REPORT_INTERVAL_S, self._report_now
            )

    def _report_now(self) -> None:
        self._reporting = None
        if time.monotonic() >= self._reports_until or self.source is None:
            return
        if hooks.sendable(self.sender) and (self._report is None or self._report.done()):
            self._report = hooks.send_sender_report(self.sender)
        self._reporting = asyncio.get_running_loop().call_later(REPORT_INTERVAL_S, self._report_now)

    def _close_loss_window(self, now: float) -> bool:
        """End the loss window if it has lasted `LOSS_WINDOW_S`; True if it found the viewer's
        link congested."""
        elapsed = now - self._loss_start
        if elapsed < LOSS_WINDOW_S:
            return False
        packets, octets, last_seq, _ = self.counters()
        sent = packets - self._loss_sent[0]
        sent_bps = ((octets - self._loss_sent[1]) + sent * PACKET_OVERHEAD) * 8 / elapsed
        recent = self._lost[0]
        lost = len(recent)
        self._loss_start, self._loss_sent = now, (packets, octets)
        self._loss_from = (self._loss_from[1], last_seq)
        self._lost = (set(), recent)
        if elapsed > 4 * LOSS_WINDOW_S:  # the first window, or one nothing ended for a while
            return False
        return self.link.losses(sent=sent, lost=lost, sent_bps=sent_bps + self._taken(now), now=now)

    def reconsider(self) -> None:
        """Move to the layer of its track that fits the viewer's estimate now, if another; or
        probe whether its link would carry the next layer up."""
        source = self.source
        if source is None or len(source.layers) == 1 or source.closed:
            return
        now = time.monotonic()
        self._close_loss_window(now)
        if self.munger.waiting_for_start and hooks.sendable(self.sender):
            # Still no keyframe to start from: ask again (a lost request must not leave the
            # viewer black; a layer has few viewers to ask for one in passing).
            source.request_keyframe()
        target = source.layers[self._choose(source)]
        if target is source:
            if self._switch_to is not None:  # the link recovered before the switch was made
                self._switch_to.forget_switch(self)
                self._switch_to = None
                self.keep_temporal(None)
            self._maybe_probe(source, now)
        elif target is self._switch_to:
            target.request_keyframe()  # still waiting: a request may have been lost, or ignored
        elif (
            self.link.congested(now)
            and source.layers.index(target) < source.layers.index(source)
            and not self._base_fits(source, now)
        ):
            # Down from a link that is losing packets or queueing them, and the current layer
            # has no temporal layers to shed, or its base one would not fit either: stop
            # sending it now. What it would add until the target's keyframe only lengthens the
            # queue that keyframe must pass, and is lost at its tail (at 600 kbit/s the full
            # layer's last second cost the quarter layer's first keyframe; at 300 kbit/s the
            # full layer's base temporal layer held a new viewer's first picture back 4 s).
            self._move_to(target)
        else:
            if self.link.congested(now) and source.layers.index(target) < source.layers.index(
                source
            ):
                # A fast step down: the current layer's base temporal layer only (a quarter of
                # its frames, about half its rate) until the target's keyframe.
                self.keep_temporal(0)
            # The current layer goes on until the target's keyframe (no gap while it comes).
            if self._switch_to is not None:
                self._switch_to.forget_switch(self)
            self._switch_to = target
            target.await_keyframe(self)

    def _base_fits(self, source: PublishedTrack, now: float) -> bool:
        """Whether `source`'s base temporal layer (about `BASE_TEMPORAL_SHARE` of its rate)
        fits the viewer's estimate (False: it comes in no temporal layers, or the estimate is
        still climbing from its start, and says too little about the link to lean on)."""
        estimate = self.link.estimate(now)
        if not source.temporal or estimate is None or not self.link.settled:
            return False
        return source.rate_bps(now) * BASE_TEMPORAL_SHARE <= estimate - self._taken(now)

    def _maybe_probe(self, source: PublishedTrack, now: float) -> None:
        """Pad the viewer's stream up to what the next layer up needs, if its estimate does not
        yet show it would fit (streaming/link_estimate.py)."""
        link = self.link
        if self.munger.waiting_for_start or not link.may_probe(now):
            return
        rates = [layer.rate_bps(now) for layer in source.layers]
        above = self.choice.above(rates)
        estimate = link.estimate(now)
        if above is None or estimate is None or hooks.rtx_stream(self.sender) is None:
            return
        taken = self._taken(now)
        need = rates[above] / UP_SHARE * 1.05 + taken  # a little over: the step up must pass
        if estimate >= need:
            return  # it fits already: the choice steps up in its own time
        target = link.start_probe(need, now)
        self._report_often(PROBE_MAX_S)
        self._padding_bps = max(target - taken - max(source.rate_bps(now), 0.0), 0.0)
        self._padding_stamp, self._padding_due = now, 0
        if self._padding is None:
            self._padding = asyncio.get_running_loop().call_later(PADDING_INTERVAL_S, self._pad)

    def _pad(self) -> None:
        """Send the probe's bytes due since the last time, on the viewer's retransmission stream
        (RFC 4588): copies of the packets it was sent last (as libwebrtc probes: a packet the
        link dropped may come this way), or padding when there are none. Its browser counts
        the bytes for its estimate, then drops what it has."""
        self._padding = None
        source = self.source
        now = time.monotonic()
        rtx = hooks.rtx_stream(self.sender)
        if source is None or rtx is None or not self.link.probing(now):
            if not self.link.probing(now) and source is not None:
                self.reconsider()  # the probe is over: step up if it proved the link
            return
        # What is due since the last time, less what the last time sent beyond its due (a copy
        # is a whole packet): over a probe, the rate asked for.
        due = self._padding_due + int(self._padding_bps * (now - self._padding_stamp) / 8)
        self._padding_stamp = now
        last = source.last_forwarded
        abs_send_time = None
        if last is not None and last.abs_send_time is not None:
            # The publisher's send time, carried forward: the viewer's estimator compares it
            # with the forwarded packets' (its clock is the publisher's, not the server's).
            ticks = int.from_bytes(last.abs_send_time, "big") + int((now - last.arrival) * 262144)
            abs_send_time = (ticks & 0xFFFFFF).to_bytes(3, "big")
        recent = self._recent_packets(source, now)
        ssrc, payload_type = rtx
        munger = self.munger
        while due > 0:
            self._rtx_sequence_number = (self._rtx_sequence_number + 1) & 0xFFFF
            if recent:
                packet = recent[self._rtx_sequence_number % len(recent)]
                sequence_number, timestamp = munger.munge(packet.sequence_number, packet.timestamp)
                payload = packet.payload
                if packet.vp8 is not None:
                    payload = self._rest(packet, payload)
                payload, padding = sequence_number.to_bytes(2, "big") + payload, 0
            else:
                timestamp, payload, padding = munger.last_ts, b"", min(max(due, 1), PADDING_MAX)
            self._output.send(
                probe_packet(
                    self.layout,
                    payload_type=payload_type,
                    sequence_number=self._rtx_sequence_number,
                    timestamp=timestamp,
                    ssrc=ssrc,
                    abs_send_time=abs_send_time,
                    payload=payload,
                    padding=padding,
                )
            )
            due -= len(payload) + padding + PACKET_OVERHEAD
        self._padding_due = due
        self._padding = asyncio.get_running_loop().call_later(PADDING_INTERVAL_S, self._pad)

    def _recent_packets(self, source: PublishedTrack, now: float) -> list[ForwardedPacket]:
        """The packets of the last `PROBE_COPIES_S` that this slot was sent from `source` (the
        last `PROBE_COPIES_MAX` at most: a tick sends one or two)."""
        last = source.last_forwarded
        if last is None or self.munger.waiting_for_start:
            return []
        since = max(now - PROBE_COPIES_S, self._source_since)
        recent: list[ForwardedPacket] = []
        for back in range(PROBE_COPIES_MAX):
            packet = source.history((last.sequence_number - back) & 0xFFFF)
            if packet is None or packet.arrival < since:
                break
            if packet.payload_type == self._source_pt:
                recent.append(packet)
        return recent

    @property
    def layer(self) -> str | None:
        """The rid of the simulcast layer this slot gets (None: not a simulcast track)."""
        source = self.source
        return source.rid if source is not None and len(source.layers) > 1 else None

    def close(self) -> None:
        for timer in (self._padding, self._reporting):
            if timer is not None:
                timer.cancel()
        self._padding = self._reporting = None
        self.set_source(None)
