"""Answers to a viewer's NACKs: only packets still useful, each at most once a round trip, within
a budget that is a share of what the viewer's link carries.

A viewer's browser NACKs what it missed and waits about one round trip plus its jitter buffer for
it; a packet resent later is thrown away on arrival, and one resent twice within a round trip
was answered already. A viewer whose link is slower than the stream misses a lot and NACKs it
all: answering every NACK from the history offered such a viewer 35 times what its link carries
(the issue's 300 kbit/s attendee), which lost it more packets still, and doubled the server's CPU.
So each viewer slot keeps a `Retransmissions`:

* too old: a packet that reached the server more than `round trip + JITTER_BUFFER_S` ago (at
  most `MAX_AGE_S`) is not sent again;
* repeated: a packet sent again less than a round trip ago is not sent again yet;
* over budget: resent bytes come from a token bucket filled at `BUDGET_SHARE` of the viewer's
  own estimate of its link (REMB), or, until it sends one, of the stream's rate (and before
  that `UNKNOWN_RATE_BPS`), holding at most `BURST_S` of it, full at the first NACK.

Each refusal is counted by reason (`RetransmitCounts`), as is every packet sent again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_RTT_S = 0.1  # before the first receiver report gives a round trip
MIN_RTT_S = 0.01
# How long past one round trip a viewer still waits for a missing packet (libwebrtc NACKs one
# up to ten times, a round trip apart). At 200 ms, a resent packet lost again was often too old
# by the time the viewer asked again, and its picture waited seconds for the next keyframe
# (the 5% loss / 100 ms jitter story froze for 2.5-3 s in about one run in eight).
JITTER_BUFFER_S = 0.5
MAX_AGE_S = 1.0
# Of the viewer's estimate (or the stream's rate), for retransmissions. Half, not less: a
# viewer's NACKs for packets that are only late (reordered by jitter) spend it too, and the
# losses that matter are NACKed again until repaired (tests/streaming/test_media_loss.py:
# 5% loss with 100 ms of jitter kept 29 fps at a half, fell to 5-20 at a quarter).
BUDGET_SHARE = 0.5
UNKNOWN_RATE_BPS = 500_000  # the rate assumed before either is known (a stream's first second)
BURST_S = 0.5  # the bucket holds this long's worth of budget
MIN_BURST_BYTES = 2 * 1200  # but always room for a couple of full packets
REMEMBERED = 512  # packets remembered as resent (the forwarder's history is as long)


@dataclass(slots=True)
class RetransmitCounts:
    sent: int = 0
    too_old: int = 0
    repeated: int = 0
    over_budget: int = 0

    @property
    def refused(self) -> int:
        return self.too_old + self.repeated + self.over_budget


class Retransmissions:
    """One viewer slot's answers to NACKs (see the module's docstring)."""

    __slots__ = ("_resent", "_stamp", "_tokens", "counts")

    def __init__(self) -> None:
        self.counts = RetransmitCounts()
        # The bucket starts full (at the first NACK): a viewer that has just joined loses its
        # first keyframe's packets like any other, and has nothing to decode until they come.
        self._tokens = -1.0
        self._stamp: float | None = None
        self._resent: OrderedDict[int, float] = OrderedDict()  # source seq -> when resent

    def allow(
        self,
        *,
        sequence_number: int,
        arrival: float,
        size: int,
        now: float,
        rtt: float | None,
        rate_bps: float,
    ) -> bool:
        """Whether to send again the packet `sequence_number` (the source's) of `size` bytes that
        reached the server at `arrival`, at `now` (monotonic seconds). `rtt` is the viewer's
        round trip (None: not known yet); `rate_bps` what its link carries, as far as known."""
        round_trip = max(rtt if rtt is not None else DEFAULT_RTT_S, MIN_RTT_S)
        if now - arrival > min(round_trip + JITTER_BUFFER_S, MAX_AGE_S):
            self.counts.too_old += 1
            return False
        last = self._resent.get(sequence_number)
        if last is not None and now - last < round_trip:
            self.counts.repeated += 1
            return False
        budget = BUDGET_SHARE * (rate_bps if rate_bps > 0 else UNKNOWN_RATE_BPS) / 8  # bytes/s
        capacity = max(budget * BURST_S, MIN_BURST_BYTES)
        if self._stamp is None:
            self._tokens = capacity
        else:
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * budget)
        self._stamp = now
        if self._tokens < size:
            self.counts.over_budget += 1
            return False
        self._tokens -= size
        self._resent[sequence_number] = now
        self._resent.move_to_end(sequence_number)
        if len(self._resent) > REMEMBERED:
            self._resent.popitem(last=False)
        self.counts.sent += 1
        return True
