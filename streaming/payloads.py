"""What the forwarder and recorder need to know about VP8 / H.264 payloads, read without decoding."""

from __future__ import annotations

_H264_IDR = 5
_H264_SPS = 7
_H264_STAP_A = 24
_H264_FU_A = 28


def vp8_keyframe_start(payload: bytes) -> bool:
    """True if this RTP payload (RFC 7741) is the first packet of a VP8 keyframe."""
    index = _vp8_frame_start(payload)
    # VP8 payload header: P bit (bit 0 of the first byte) is 0 for a keyframe.
    return 0 < index < len(payload) and not payload[index] & 0x01


def vp8_keyframe_size(payload: bytes) -> tuple[int, int] | None:
    """Width and height of the VP8 keyframe this RTP payload starts (None if it starts none)."""
    index = _vp8_frame_start(payload)
    if index <= 0 or not vp8_keyframe_start(payload):
        return None
    return vp8_frame_size(payload[index : index + 10])


def _vp8_frame_start(payload: bytes) -> int:
    """Where the VP8 frame begins in the first packet of a frame (0: not a frame's first)."""
    size = len(payload)
    if size < 2:
        return 0
    first = payload[0]
    # S (start of partition) must be set and the partition index must be 0.
    if not first & 0x10 or first & 0x0F:
        return 0
    index = 1
    if first & 0x80:  # X: extension octet present
        ext = payload[1]
        index = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if index >= size:
                return 0
            index += 2 if payload[index] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            index += 1
        if ext & 0x30:  # T or K: TID/KEYIDX octet
            index += 1
    return index


# A VP8 payload descriptor's picture id and TL0PICIDX (RFC 7741 section 4.2), as read by
# `vp8_descriptor`: the picture id's length in bytes (1: 7 bits, 2: 15 bits; it begins at byte 2),
# the picture id, where TL0PICIDX is (-1: absent) and its value.
Vp8Descriptor = tuple[int, int, int, int]


def vp8_descriptor(payload: bytes) -> Vp8Descriptor | None:
    """The picture id and TL0PICIDX of a VP8 RTP payload (None: it carries no picture id)."""
    size = len(payload)
    if size < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:  # X, then I
        return None
    if payload[2] & 0x80:  # M: a 15-bit picture id
        if size < 4:
            return None
        length, picture_id = 2, ((payload[2] & 0x7F) << 8) | payload[3]
    else:
        length, picture_id = 1, payload[2]
    if not payload[1] & 0x40:  # L: no TL0PICIDX
        return length, picture_id, -1, 0
    position = 2 + length
    if position >= size:
        return None
    return length, picture_id, position, payload[position]


def vp8_temporal_id(payload: bytes) -> int:
    """The temporal layer (TID, 0 the base) of a VP8 RTP payload (-1: its descriptor gives none).
    Chromium sends each simulcast layer in three temporal layers: 0 every fourth frame, 1 the
    frames between those, 2 every other frame; a frame of one references only lower ones."""
    size = len(payload)
    if size < 3 or not payload[0] & 0x80 or not payload[1] & 0x20:  # X, then T
        return -1
    extension = payload[1]
    index = 2
    if extension & 0x80:  # I: a picture id of 1 or 2 bytes
        index += 2 if payload[2] & 0x80 else 1
    if extension & 0x40:  # L: TL0PICIDX
        index += 1
    return payload[index] >> 6 if index < size else -1


def vp8_rewrite(payload: bytes, descriptor: Vp8Descriptor, picture_id: int, tl0: int) -> bytes:
    """`payload` with its descriptor's picture id and TL0PICIDX replaced (same length)."""
    length, _, tl0_position, _ = descriptor
    out = bytearray(payload)
    if length == 2:
        out[2] = 0x80 | (picture_id >> 8 & 0x7F)
        out[3] = picture_id & 0xFF
    else:
        out[2] = picture_id & 0x7F
    if tl0_position >= 0:
        out[tl0_position] = tl0 & 0xFF
    return bytes(out)


def h264_keyframe_start(payload: bytes) -> bool:
    """True if this RTP payload (RFC 6184) starts an IDR picture or carries its SPS."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (_H264_IDR, _H264_SPS):
        return True
    if nal_type == _H264_STAP_A:
        index = 1
        while index + 2 < len(payload):
            size = (payload[index] << 8) | payload[index + 1]
            if payload[index + 2] & 0x1F in (_H264_IDR, _H264_SPS):
                return True
            index += 2 + size
        return False
    if nal_type == _H264_FU_A and len(payload) > 1:
        header = payload[1]
        return bool(header & 0x80) and (header & 0x1F) in (_H264_IDR, _H264_SPS)
    return False


def keyframe_detector(codec_name: str):  # type: ignore[no-untyped-def]
    """Return the keyframe-start test for a codec; audio packets are always a valid start."""
    name = codec_name.lower()
    if name == "vp8":
        return vp8_keyframe_start
    if name == "h264":
        return h264_keyframe_start
    return lambda payload: True


def vp8_frame_is_keyframe(frame: bytes) -> bool:
    """For a whole depacketized VP8 frame."""
    return bool(frame) and not frame[0] & 0x01


def vp8_frame_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 section 9.1)."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    height = int.from_bytes(frame[8:10], "little") & 0x3FFF
    return width, height
