"""A viewer's NACKs are answered only while the packet is still useful, at most once a round
trip, and within a share of what the viewer's link carries (streaming/retransmit.py)."""

from __future__ import annotations

from streaming.retransmit import (
    BUDGET_SHARE,
    JITTER_BUFFER_S,
    MAX_AGE_S,
    Retransmissions,
)

PACKET = 1200


def test_a_packet_is_sent_again_only_while_the_viewer_still_waits_for_it() -> None:
    answers = Retransmissions()
    rtt = 0.05
    fresh = answers.allow(
        sequence_number=1, arrival=10.0, size=PACKET, now=10.1, rtt=rtt, rate_bps=2e6
    )
    stale = answers.allow(
        sequence_number=2,
        arrival=10.0,
        size=PACKET,
        now=10.0 + rtt + JITTER_BUFFER_S + 0.01,
        rtt=rtt,
        rate_bps=2e6,
    )
    # However long the round trip, a packet older than the longest wait is not sent again.
    ancient = answers.allow(
        sequence_number=3,
        arrival=10.0,
        size=PACKET,
        now=10.0 + MAX_AGE_S + 0.01,
        rtt=5.0,
        rate_bps=2e6,
    )
    assert (fresh, stale, ancient) == (True, False, False)
    assert (answers.counts.sent, answers.counts.too_old) == (1, 2)


def test_a_packet_nacked_again_within_a_round_trip_is_sent_once() -> None:
    answers = Retransmissions()
    rtt = 0.1

    def nack(now: float) -> bool:
        return answers.allow(
            sequence_number=7, arrival=20.0, size=PACKET, now=now, rtt=rtt, rate_bps=2e6
        )

    assert [nack(20.01), nack(20.05), nack(20.09), nack(20.12)] == [True, False, False, True]
    assert (answers.counts.sent, answers.counts.repeated) == (2, 2)


def test_a_viewer_nacking_everything_gets_a_share_of_its_link_and_no_more() -> None:
    """A 300 kbit/s viewer (its own estimate) NACKs every packet of a stream it cannot carry, a
    hundred a second for ten seconds: the bytes sent again stay within its budget, half of its
    link (plus one burst), and the rest is counted as refused."""
    answers = Retransmissions()
    link_bps = 300_000
    sent_bytes = 0
    for n in range(1000):
        now = 30.0 + n / 100
        if answers.allow(
            sequence_number=n,
            arrival=now - 0.05,
            size=PACKET,
            now=now,
            rtt=0.05,
            rate_bps=link_bps,
        ):
            sent_bytes += PACKET
    budget = BUDGET_SHARE * link_bps / 8
    assert sent_bytes <= budget * 10 + budget  # ten seconds' budget and at most a second's burst
    assert sent_bytes >= budget * 10 * 0.9  # and it is used, not starved
    assert answers.counts.over_budget == 1000 - answers.counts.sent
    assert answers.counts.refused == answers.counts.over_budget


def test_before_any_estimate_the_budget_is_a_share_of_an_assumed_rate() -> None:
    answers = Retransmissions()
    allowed = sum(
        answers.allow(
            sequence_number=n,
            arrival=40.0 + n / 100,
            size=PACKET,
            now=40.0 + n / 100 + 0.02,
            rtt=None,
            rate_bps=0,
        )
        for n in range(200)
    )
    assert 0 < allowed < 200
