"""What a forwarded RTP packet looks like on the wire for one viewer, apart from its 12-byte header.

A viewer negotiates its own header-extension ids and its own mid, so the bytes after the fixed RTP
header (extension block, payload) depend on the viewer's extension layout. Viewers with the same
layout (most of them: aiortc numbers every viewer's m-lines alike) share one template per packet,
built by the first of them to need it; each then only packs its 12-byte header in front of it.
Both the Python path and the C fan-out send these templates.
"""

from __future__ import annotations

import time
from struct import Struct
from typing import NamedTuple

from .payloads import Vp8Descriptor

ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"

RTP_HEADER = Struct("!BBHII")  # first byte, marker|payload type, sequence, timestamp, SSRC
_EXTENSION_HEADER = Struct("!HH")

Template = tuple[int, int, bytes]  # first byte, marker bit (<< 7), everything after the SSRC


class HeaderLayout(NamedTuple):
    """One viewer's one-byte header extensions (RFC 8285), as prefixes ready to write: audio
    level, abs-send-time (each copied from the received packet when present), and its mid."""

    level_prefix: bytes
    abs_prefix: bytes
    mid_element: bytes


NO_EXTENSIONS = HeaderLayout(b"", b"", b"")


def negotiated_layout(extensions: dict[str, int], mid: str | None) -> HeaderLayout:
    """The layout for a viewer's negotiated extension ids (URI -> id) and m-line mid."""
    mid_bytes = (mid or "").encode()
    mid_id = extensions.get(MID_URI)
    abs_id = extensions.get(ABS_SEND_TIME_URI)
    level_id = extensions.get(AUDIO_LEVEL_URI)
    return HeaderLayout(
        level_prefix=bytes(((level_id << 4) | 0,)) if level_id else b"",
        abs_prefix=bytes(((abs_id << 4) | 2,)) if abs_id else b"",
        mid_element=(
            bytes(((mid_id << 4) | (len(mid_bytes) - 1),)) + mid_bytes
            if mid_id and 0 < len(mid_bytes) <= 16
            else b""
        ),
    )


# Layouts -> small ints, so that a packet's template cache is keyed by an int rather than by a
# tuple hashed per viewer and packet. Process-wide on purpose: an interning table of a handful of
# immutable layouts, shared by every track.
_LAYOUT_IDS: dict[HeaderLayout, int] = {}


def layout_id(layout: HeaderLayout) -> int:
    found = _LAYOUT_IDS.get(layout)
    if found is None:
        found = _LAYOUT_IDS[layout] = len(_LAYOUT_IDS)
    return found


class ForwardedPacket:
    """One received RTP packet, reduced to what every viewer needs to rewrite it.

    `size` is the payload's length and `arrival` the monotonic time it reached the forwarder.
    `templates` caches, per layout id, the packet's `Template` for that layout.
    """

    __slots__ = (
        "sequence_number",
        "timestamp",
        "marker",
        "payload_type",
        "payload",
        "abs_send_time",
        "audio_level",
        "keyframe_start",
        "vp8",
        "temporal_id",
        "ntp_time",
        "templates",
        "size",
        "arrival",
    )

    def __init__(
        self,
        sequence_number: int,
        timestamp: int,
        marker: int,
        payload_type: int,
        payload: bytes,
        abs_send_time: bytes | None,
        audio_level: bytes | None,
        keyframe_start: bool,
        ntp_time: int,
        vp8: Vp8Descriptor | None = None,
        temporal_id: int = -1,
    ) -> None:
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.marker = marker
        self.payload_type = payload_type
        self.payload = payload
        self.abs_send_time = abs_send_time
        self.audio_level = audio_level
        self.keyframe_start = keyframe_start
        # Its VP8 picture id and TL0PICIDX (streaming/payloads.py), which a viewer's numbering
        # rewrites after a switch (None: not VP8, or none in the packet).
        self.vp8 = vp8
        self.temporal_id = temporal_id  # its VP8 temporal layer (-1: not given)
        self.ntp_time = ntp_time
        self.templates: dict[int, Template] = {}
        self.size = len(payload)
        self.arrival = time.monotonic()

    def template(self, layout_id: int, layout: HeaderLayout) -> Template:
        """This packet's template for `layout` (whose id is `layout_id`), built once."""
        found = self.templates.get(layout_id)
        if found is None:
            found = self.templates[layout_id] = build_template(self, layout)
        return found


def build_template(packet: ForwardedPacket, layout: HeaderLayout) -> Template:
    """The outgoing packet for one extension layout: its first byte, the marker bit (ORed with a
    viewer's payload type) and everything after the SSRC (extension block, payload)."""
    level_prefix, abs_prefix, mid_element = layout
    elements = mid_element
    if packet.abs_send_time is not None and abs_prefix:
        elements = abs_prefix + packet.abs_send_time + elements
    if packet.audio_level is not None and level_prefix:
        elements = level_prefix + packet.audio_level + elements
    if not elements:
        return 0x80, packet.marker << 7, packet.payload
    padding = -len(elements) % 4
    return (
        0x90,
        packet.marker << 7,
        b"".join(
            (
                _EXTENSION_HEADER.pack(0xBEDE, (len(elements) + padding) >> 2),
                elements,
                b"\x00" * padding,
                packet.payload,
            )
        ),
    )


def probe_packet(
    layout: HeaderLayout,
    *,
    payload_type: int,
    sequence_number: int,
    timestamp: int,
    ssrc: int,
    abs_send_time: bytes | None,
    payload: bytes = b"",
    padding: int = 0,
) -> bytes:
    """An RTP packet a probe sends on a viewer's retransmission stream: `payload` (a copy of a
    packet sent, RFC 4588) and/or `padding` (0-255) bytes of padding (RFC 3550 section 5.1),
    with the layout's abs-send-time (when given: the time it is sent) and mid."""
    _, abs_prefix, mid_element = layout
    elements = mid_element
    if abs_send_time is not None and abs_prefix:
        elements = abs_prefix + abs_send_time + elements
    extension = b""
    if elements:
        fill = -len(elements) % 4
        extension = (
            _EXTENSION_HEADER.pack(0xBEDE, (len(elements) + fill) >> 2) + elements + bytes(fill)
        )
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0)
    header = RTP_HEADER.pack(first, payload_type & 0x7F, sequence_number, timestamp, ssrc)
    tail = bytes(padding - 1) + bytes((padding,)) if padding else b""
    return header + extension + payload + tail
