"""What one viewer's link carries: its browser's estimate, the losses its NACKs show, and probes.

A viewer's browser tells the server what it thinks its link carries (REMB, from the delay of the
packets it receives). That estimate is slow to start (Chromium sends its first a second or two
after the first picture), falls only once the browser sees its queue grow, and never rises above
about 1.5 times what the viewer already receives: a viewer given a lower layer is never estimated
to carry a higher one. So each viewer slot keeps a `ViewerLink` that adds, as libwebrtc's own
sender does beside its delay-based estimate:

* **losses**: the packets of each `LOSS_WINDOW_S` that the viewer NACKed, against those sent in
  it. A window that lost more than `LOSS_CONGESTED` means the link is full now: for
  `CONGESTION_HOLD_S` the estimate is at most what arrived (what was sent, less what was lost),
  so the viewer steps down within half a second of its first losses, without waiting for its
  browser. (GCC's loss-based rule, sent x (1 - loss / 2), is for a sender that adjusts its rate
  by small steps every feedback; a viewer's step is a whole layer.)
* **round trips**: each receiver report gives a round trip; two in a row still growing and
  `CONGESTED_DELAY_S` over the least of the last `ROUND_TRIP_WINDOW_S` mean a queue is filling
  on the way: the link is congested even before it loses anything, and carries less than is
  sent (the estimate is capped at `DELAY_CAP_SHARE` of it). This is what moves a new viewer off
  the top layer in its first second, before its browser has said anything (the server sends
  it Sender Reports every `REPORT_INTERVAL_S` for its first seconds, and during probes, so
  that round trips come that often).
* **probes**: so that the browser's estimate can rise to what a higher layer needs, the server
  pads the viewer's stream (on its retransmission stream, which the browser counts and throws
  away) up to at most `PROBE_GROWTH` times the estimate, until the estimate has followed
  (`PROBE_CONFIRM`) or `PROBE_MAX_S` has passed. Any sign of a queue or of loss ends it at once
  (a round trip `PROBE_DELAY_S` over the least, a loss window over `LOSS_CLEAN`, the estimate
  falling): the link did not carry it. Probes wait until the viewer has been on its layer for
  `PROBE_SETTLE_S`, and one that failed is tried again later and later (`PROBE_BACKOFF_S`).

The estimate itself is always the browser's (or the loss-based cap below it): a probe only gives
the browser's estimator the traffic it needs to grow. (On a link with a deep buffer, a probe the
server judged by itself, from silence, passed on the buffer's credit and then lost packets.)

Pure arithmetic on times the caller passes (monotonic seconds), like streaming/munger.py, so it is
tested on its own (tests/streaming/test_link_estimate.py); streaming/forwarder.py's `ViewerSlot`
feeds it and sends the padding.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

LOSS_WINDOW_S = 0.5
# A window losing more than this share of what was sent: the link is congested.
LOSS_CONGESTED = 0.1
# A window losing at most this share carried what was sent (the rest is noise a link has).
LOSS_CLEAN = 0.02
# Fewer packets than this in a window say nothing about loss (an audio-only lull, a paused layer).
MIN_PACKETS = 10
# After congestion, the loss-based cap holds this long, and no probe starts.
CONGESTION_HOLD_S = 3.0
# A browser's estimate this far below its highest since the last congestion: it saw its queue
# grow (overuse). Chromium lowers its estimate in steps of a few per cent, a REMB each.
ESTIMATE_DROP = 0.9
# During a probe, a smaller drop or loss ends it as failed: the link did not carry the probe.
PROBE_ESTIMATE_DROP = 0.97
# Round trips are compared with the least of this last while.
ROUND_TRIP_WINDOW_S = 10.0
# A round trip this much over the least: a queue is growing on the viewer's link.
CONGESTED_DELAY_S = 0.15
# A queue growing: what is sent is more than the link carries; the estimate is at most this share
# of it until the link recovers.
DELAY_CAP_SHARE = 0.7
# Sender Reports (and so round trips) this often while round trips matter most.
REPORT_INTERVAL_S = 0.2
# During a probe, this much over the least ends it as failed (at 600 kbit/s, 50 ms of queue is
# under 4 KB: the probe stops long before the link's buffer overflows).
PROBE_DELAY_S = 0.05
PROBE_MAX_S = 4.0
PROBE_GROWTH = 1.25
PROBE_CONFIRM = 0.95  # the estimate has followed a probe at this share of its rate
PROBE_SETTLE_S = 3.0
PROBE_PAUSE_S = 1.0  # between a probe that succeeded and the next
# After a failed probe, what its padding queued on the link drains: losses this long after it are
# the probe's, not the link's.
PROBE_DRAIN_S = 1.0
# Waits before probing again after a failed probe (the last repeats).
PROBE_BACKOFF_S = (8.0, 15.0, 30.0, 60.0)


@dataclass(slots=True)
class ProbeCounts:
    started: int = 0
    succeeded: int = 0
    failed: int = 0


class ViewerLink:
    """One viewer's link, as far as the server can tell (see the module's docstring)."""

    __slots__ = (
        "_failures",
        "_probe_peak",
        "_quiet_until",
        "_remb_peak",
        "_round_trips",
        "_last_round_trip",
        "_queue_seen",
        "congested_at",
        "counts",
        "loss_cap_bps",
        "next_probe_at",
        "probe_bps",
        "probe_until",
        "remb_bps",
        "settled",
    )

    def __init__(self) -> None:
        self.remb_bps: int | None = None
        # Whether the browser's estimate has ever fallen. Until then it is still climbing from
        # where it started (libwebrtc's starts low and grows by about 8% a second), and says
        # little against what the viewer receives: a layer is kept unless it is a third over
        # the estimate (streaming/simulcast.py), or losses or a queue show.
        self.settled = False
        self._remb_peak = 0  # the browser's highest estimate since the link was last congested
        self.loss_cap_bps: float | None = None
        self.congested_at: float | None = None
        self.probe_until: float | None = None  # a probe under way ends then
        self.probe_bps = 0.0  # what the probe pads the viewer's stream up to
        self._probe_peak = 0  # the browser's highest estimate during the probe
        self.next_probe_at = 0.0
        self._quiet_until = 0.0
        self._failures = 0
        self._round_trips: deque[tuple[float, float]] = deque()  # (when, round trip)
        self._last_round_trip = 0.0
        self._queue_seen = False  # the last round trip was a queue's (over and growing)
        self.counts = ProbeCounts()

    # -- what the viewer says -------------------------------------------------------------------

    def remb(self, bitrate: int, now: float) -> bool:
        """The viewer's browser estimates `bitrate`; True if that says the link is congested."""
        if self.remb_bps is not None and bitrate < self.remb_bps * PROBE_ESTIMATE_DROP:
            self.settled = True
        self.remb_bps = bitrate
        if self.probe_until is not None:
            self._probe_peak = max(self._probe_peak, bitrate)
            if bitrate < self._probe_peak * PROBE_ESTIMATE_DROP:
                self._probe_failed(now)
        if bitrate < self._remb_peak * ESTIMATE_DROP and now >= self._quiet_until:
            self._congested(now, cap=None)
            return True
        self._remb_peak = max(self._remb_peak, bitrate)
        return False

    def round_trip(self, seconds: float, now: float, *, sent_bps: float) -> bool:
        """A receiver report's round trip, while `sent_bps` is sent; True if it says the link
        is congested (a queue still growing: a report naming an older Sender Report, or one
        taken while the queue drains, does not)."""
        samples = self._round_trips
        samples.append((now, seconds))
        while samples[0][0] < now - ROUND_TRIP_WINDOW_S:
            samples.popleft()
        least = min(sample for _, sample in samples)
        growing, self._last_round_trip = seconds > self._last_round_trip + 0.01, seconds
        if self.probe_until is not None and seconds > least + PROBE_DELAY_S:
            self._probe_failed(now)
        # Two in a row: one alone may be the server's own loop held up (every viewer's round
        # trip then grows at once, and none of their links is full).
        queue, seen = growing and seconds > least + CONGESTED_DELAY_S, self._queue_seen
        self._queue_seen = queue
        if queue and seen and now >= self._quiet_until:
            self._congested(now, cap=sent_bps * DELAY_CAP_SHARE if sent_bps > 0 else None)
            return True
        return False

    def losses(self, *, sent: int, lost: int, sent_bps: float, now: float) -> bool:
        """One loss window: `sent` packets at `sent_bps` (with what the viewer's other streams
        take), of which the viewer NACKed `lost`; True if the link is congested."""
        if sent < MIN_PACKETS:
            return False
        loss = min(lost / sent, 1.0)
        if loss <= LOSS_CLEAN:
            return False
        if self.probe_until is not None:
            self._probe_failed(now)
        if loss <= LOSS_CONGESTED or now < self._quiet_until:
            return False
        self._congested(now, cap=sent_bps * (1 - loss))
        return True

    def _congested(self, now: float, *, cap: float | None) -> None:
        if cap is not None:
            self.loss_cap_bps = cap
        self.congested_at = now
        self._remb_peak = self.remb_bps or 0
        self.next_probe_at = max(self.next_probe_at, now + CONGESTION_HOLD_S)

    def _probe_failed(self, now: float) -> None:
        self.probe_until = None
        self.counts.failed += 1
        wait = PROBE_BACKOFF_S[min(self._failures, len(PROBE_BACKOFF_S) - 1)]
        self._failures += 1
        self.next_probe_at = max(self.next_probe_at, now + wait)
        self._quiet_until = now + PROBE_DRAIN_S

    def congested(self, now: float) -> bool:
        return self.congested_at is not None and now - self.congested_at < CONGESTION_HOLD_S

    # -- what the server makes of it ------------------------------------------------------------

    def estimate(self, now: float) -> float | None:
        """What the link carries (bits a second; None: nothing known yet)."""
        self.probing(now)
        if self.congested(now) and self.remb_bps is None:
            # Congested before the browser has said anything (a new viewer, started on the top
            # layer, on a slow link): nothing is known but that. The lowest layer gets a
            # picture to it soonest; probes and the browser's estimate lead it up from there.
            return 0.0
        if self.congested(now) and self.loss_cap_bps is not None:
            return min(self.remb_bps or self.loss_cap_bps, self.loss_cap_bps)
        return None if self.remb_bps is None else float(self.remb_bps)

    def settle(self, now: float) -> None:
        """The viewer moved to another layer: no probe for `PROBE_SETTLE_S`."""
        self.next_probe_at = max(self.next_probe_at, now + PROBE_SETTLE_S)

    def may_probe(self, now: float) -> bool:
        return self.probe_until is None and now >= self.next_probe_at and not self.congested(now)

    def start_probe(self, need_bps: float, now: float) -> float:
        """Pad the viewer's stream towards `need_bps` (at most `PROBE_GROWTH` times the
        estimate); the rate it pads up to."""
        estimate = self.estimate(now) or 0.0
        self.probe_until = now + PROBE_MAX_S
        target = need_bps / PROBE_CONFIRM  # confirmed when the estimate reaches what is needed
        self.probe_bps = min(target, estimate * PROBE_GROWTH) if estimate else target
        self._probe_peak = self.remb_bps or 0
        self.counts.started += 1
        return self.probe_bps

    def probing(self, now: float) -> bool:
        """Whether a probe is under way; it succeeds once the estimate has followed it, and
        fails if that takes longer than `PROBE_MAX_S`."""
        if self.probe_until is None:
            return False
        if self.remb_bps is not None and self.remb_bps >= self.probe_bps * PROBE_CONFIRM:
            self.probe_until = None
            self._failures = 0
            self.counts.succeeded += 1
            self.next_probe_at = max(self.next_probe_at, now + PROBE_PAUSE_S)
            return False
        if now >= self.probe_until:
            self._probe_failed(now)
            return False
        return True
