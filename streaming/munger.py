"""One viewer's sequence numbers and timestamps: each source's packets renumbered into one stream.

A viewer's m-line carries one RTP stream for as long as the viewer stays, while what feeds it may
change (a speaker reconnects, the slot is reused for another speaker). The munger maps each
source's sequence numbers and timestamps onto the viewer's, so that, seen from the viewer, the
stream continues: the first packet after a switch follows the last one sent, by one sequence
number and by the time that passed. It also holds the keyframe gate: after a switch nothing is
sent until a packet that starts a keyframe (a decoder cannot start elsewhere).

Pure arithmetic on integers (as livekit's `rtpmunger`): no aiortc, no sockets, no clock of its
own (callers pass the time), so it is tested on its own (tests/streaming/test_munger.py).
"""

from __future__ import annotations

import random

SEQUENCE_MASK = 0xFFFF  # RTP sequence numbers are 16 bits
MAX_SEGMENTS = 256  # offsets remembered after packets skipped (a few seconds of a dropped layer)
TIMESTAMP_MASK = 0xFFFFFFFF  # RTP timestamps are 32 bits


class OffsetHistory:
    """An offset as it was for each of a viewer's sequence numbers, where it changed while the
    stream went on (packets skipped): a retransmission must be the packet as it was sent."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        # (the viewer's first sequence number, the offset from it on), oldest first; the first
        # entry's None stands for everything before. Empty: the offset never changed.
        self._entries: list[tuple[int | None, int]] = []

    def clear(self) -> None:
        self._entries = []

    def change(self, first: int, before: int, after: int) -> None:
        """From the viewer's sequence number `first` on, the offset is `after` (was `before`)."""
        entries = self._entries
        if not entries:
            entries.append((None, before))
        if entries[-1][0] == first:
            entries[-1] = (first, after)
        else:
            entries.append((first, after))
            if len(entries) > MAX_SEGMENTS:  # far older than any NACK still useful
                del entries[1:2]

    def at(self, sequence_number: int, current: int) -> int:
        """The offset the viewer's `sequence_number` was sent with (`current` if it never
        changed)."""
        for first, offset in reversed(self._entries):
            if first is None or (sequence_number - first) & SEQUENCE_MASK < 0x8000:
                return offset
        return current


class RtpMunger:
    """Offsets from one source's numbering to a viewer's, and where the viewer's stream stands.

    `seq_offset` and `ts_offset` are read directly on the forwarder's per-packet path (and handed
    to the C fan-out), so they are plain attributes.
    """

    __slots__ = (
        "_segments",
        "clock_rate",
        "last_sent",
        "last_seq",
        "last_ts",
        "seq_offset",
        "ts_offset",
        "waiting_for_start",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.seq_offset = 0
        self.ts_offset = 0
        self.last_seq: int | None = None  # None: nothing sent yet on this stream
        self.last_ts = 0
        self.last_sent = 0.0  # when (a monotonic time) the last packet was sent
        self.waiting_for_start = True  # the keyframe gate: closed until a keyframe starts
        # Packets of the source not sent (a temporal layer dropped) move the later ones back by
        # one: the sequence number offset as it was for each of the viewer's numbers.
        self._segments = OffsetHistory()

    def switch_source(self) -> None:
        """Another source (or none) feeds the stream: wait for its first keyframe."""
        self.waiting_for_start = True

    def admits(self, keyframe_start: bool) -> bool:
        """Whether a packet may be sent: always once started, else only one starting a keyframe."""
        return not self.waiting_for_start or keyframe_start

    def start(self, sequence_number: int, timestamp: int, now: float) -> None:
        """Map the source's numbering from this packet on so the stream continues where it left
        off: the next sequence number, and the last timestamp plus the time since it was sent (at
        least one tick, so the timestamp moves). A new stream starts at random numbers (RFC 3550
        section 5.1), below 2^15 so it does not wrap within its first packets."""
        if self.last_seq is None:
            first_seq = random.randrange(0, 32768)
            first_ts = random.randrange(0, 1 << 32)
        else:
            first_seq = (self.last_seq + 1) & SEQUENCE_MASK
            elapsed = max(1, int((now - self.last_sent) * self.clock_rate))
            first_ts = (self.last_ts + elapsed) & TIMESTAMP_MASK
        self.seq_offset = (first_seq - sequence_number) & SEQUENCE_MASK
        self.ts_offset = (first_ts - timestamp) & TIMESTAMP_MASK
        self.waiting_for_start = False
        self._segments.clear()

    def skip(self) -> None:
        """The source's next packet is not sent: the ones after it keep the viewer's sequence
        numbers continuous (a NACK for an earlier one still finds its source packet)."""
        before = self.seq_offset
        self.seq_offset = (before - 1) & SEQUENCE_MASK
        self._segments.change(self.next_sequence_number(), before, self.seq_offset)

    def next_sequence_number(self) -> int:
        """The viewer's sequence number of the next packet sent."""
        return ((self.last_seq or 0) + 1) & SEQUENCE_MASK

    def munge(self, sequence_number: int, timestamp: int) -> tuple[int, int]:
        """The viewer's sequence number and timestamp for a source's packet."""
        return (
            (sequence_number + self.seq_offset) & SEQUENCE_MASK,
            (timestamp + self.ts_offset) & TIMESTAMP_MASK,
        )

    def source_sequence_number(self, sequence_number: int) -> int:
        """The source's sequence number behind one of the viewer's (a NACK names the viewer's)."""
        offset = self._segments.at(sequence_number, self.seq_offset)
        return (sequence_number - offset) & SEQUENCE_MASK

    def sent(self, sequence_number: int, timestamp: int, now: float) -> None:
        """The viewer's packet with this (munged) sequence number and timestamp went out."""
        self.last_seq = sequence_number
        self.last_ts = timestamp
        self.last_sent = now

    def resume(self, last_seq: int, last_ts: int, now: float, *, sent_any: bool) -> None:
        """Continue from what another sender (the C fan-out) sent with these offsets."""
        self.last_ts = last_ts
        if sent_any:
            self.last_seq = last_seq
            self.last_sent = now
