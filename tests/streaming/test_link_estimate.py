"""What the server makes of a viewer's link (streaming/link_estimate.py): its browser's estimate,
capped when NACKs show losses or round trips show a queue growing, and probes that let the
browser's estimate grow towards what a higher layer needs. Pure arithmetic on given times."""

from __future__ import annotations

import pytest

from streaming.link_estimate import (
    CONGESTION_HOLD_S,
    DELAY_CAP_SHARE,
    PROBE_BACKOFF_S,
    PROBE_CONFIRM,
    PROBE_GROWTH,
    PROBE_MAX_S,
    PROBE_SETTLE_S,
    ViewerLink,
)


def test_losses_cap_the_estimate_at_what_arrived_for_a_while() -> None:
    link = ViewerLink()
    assert link.estimate(0.0) is None  # nothing known yet
    link.remb(2_000_000, 0.0)
    assert link.estimate(0.0) == 2_000_000
    # A few losses are what links have; a handful of packets says nothing.
    assert not link.losses(sent=100, lost=5, sent_bps=1_500_000, now=1.0)
    assert not link.losses(sent=5, lost=5, sent_bps=1_500_000, now=1.0)
    assert link.estimate(1.0) == 2_000_000
    # Two fifths lost: the link carries about what arrived.
    assert link.losses(sent=100, lost=40, sent_bps=1_500_000, now=2.0)
    assert link.congested(2.0)
    assert link.estimate(2.0) == 900_000
    assert link.estimate(2.0 + CONGESTION_HOLD_S) == 2_000_000  # the browser's again


def test_round_trips_growing_twice_are_a_queue_filling_but_one_alone_is_not() -> None:
    link = ViewerLink()
    link.remb(2_000_000, 0.0)
    for n in range(5):
        assert not link.round_trip(0.02, n * 0.2, sent_bps=1_000_000)
    assert not link.round_trip(0.1, 1.0, sent_bps=1_000_000)  # under the threshold
    assert not link.round_trip(0.3, 1.2, sent_bps=1_000_000)  # once: the server's loop, maybe
    assert not link.round_trip(0.02, 1.4, sent_bps=1_000_000)  # so it was
    assert not link.round_trip(0.2, 1.6, sent_bps=1_000_000)  # 180 ms over the least...
    assert link.round_trip(0.3, 1.8, sent_bps=1_000_000)  # ... and still growing: a queue
    assert link.estimate(1.8) == 1_000_000 * DELAY_CAP_SHARE
    # Reports naming the same Sender Report give the same round trip: the queue is not growing.
    assert not link.round_trip(0.3, 5.0, sent_bps=700_000)
    assert link.estimate(5.0) == 2_000_000


def test_the_browsers_estimate_falling_a_tenth_is_congestion() -> None:
    link = ViewerLink()
    for n, bitrate in enumerate([1_000_000, 1_050_000, 1_000_000]):
        assert not link.remb(bitrate, float(n))
    assert link.remb(900_000, 3.0)  # 14% under its highest
    assert link.congested(3.0)
    assert not link.remb(880_000, 3.5)  # measured from where it fell to


def test_a_probe_succeeds_when_the_browsers_estimate_follows_it() -> None:
    link = ViewerLink()
    link.remb(800_000, 0.0)
    assert link.may_probe(0.0)
    # The next layer needs 1.2 Mbit/s: the probe goes at most a quarter over the estimate.
    target = link.start_probe(1_200_000, 0.0)
    assert target == 800_000 * PROBE_GROWTH
    assert link.probing(1.0) and not link.may_probe(1.0)
    link.remb(900_000, 1.0)
    assert link.probing(1.5)
    link.remb(target * PROBE_CONFIRM, 2.0)
    assert not link.probing(2.0)
    assert link.counts.succeeded == 1 and link.counts.failed == 0
    # The next goes on from there, and asks at most for what is needed (confirmed once the
    # estimate reaches it).
    assert not link.may_probe(2.5) and link.may_probe(3.5)
    assert link.start_probe(1_200_000, 3.5) == target * PROBE_CONFIRM * PROBE_GROWTH
    link.remb(1_150_000, 4.0)
    assert not link.probing(4.0)
    assert link.start_probe(1_200_000, 5.0) == 1_200_000 / PROBE_CONFIRM


def test_a_probe_fails_on_any_sign_of_a_queue_and_waits_longer_each_time() -> None:
    link = ViewerLink()
    link.remb(400_000, 0.0)
    for n in range(3):
        link.round_trip(0.01, n * 0.2, sent_bps=300_000)
    now = 1.0
    failures = []
    # A round trip 50 ms up; loss beyond 2%; the estimate slipping; no answer within the time.
    for fail in ("round trip", "loss", "estimate", "time"):
        assert link.may_probe(now), fail
        link.start_probe(600_000, now)
        if fail == "round trip":
            link.round_trip(0.07, now + 0.3, sent_bps=450_000)
        elif fail == "loss":
            link.losses(sent=50, lost=3, sent_bps=450_000, now=now + 0.5)
        elif fail == "estimate":
            link.remb(385_000, now + 0.4)
        else:
            assert link.probing(now + PROBE_MAX_S - 0.1)
        assert not link.probing(now + PROBE_MAX_S), fail
        failures.append(link.next_probe_at - now)
        now = link.next_probe_at
        link.remb(400_000, now)  # back where it was
    assert link.counts.failed == 4 and link.counts.succeeded == 0
    # Later and later (from when each failed: 0.3, 0.5, 0.4 and PROBE_MAX_S after it began).
    assert failures == pytest.approx([0.3 + 8.0, 0.5 + 15.0, 0.4 + 30.0, PROBE_MAX_S + 60.0])
    assert PROBE_BACKOFF_S == (8.0, 15.0, 30.0, 60.0)


def test_no_probe_while_congested_or_just_after_a_switch() -> None:
    link = ViewerLink()
    link.remb(1_000_000, 0.0)
    link.settle(0.0)
    assert not link.may_probe(PROBE_SETTLE_S - 0.1) and link.may_probe(PROBE_SETTLE_S)
    link.losses(sent=100, lost=30, sent_bps=1_000_000, now=5.0)
    assert not link.may_probe(5.0 + CONGESTION_HOLD_S - 0.1)
    assert link.may_probe(5.0 + CONGESTION_HOLD_S)
