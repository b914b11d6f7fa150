"""A viewer's sequence numbers and timestamps (streaming/munger.py), on their own: the stream a
viewer sees continues across source switches and through the 16- and 32-bit wrap-arounds, and
starts (again) only on a keyframe."""

from __future__ import annotations

import pytest

from streaming import munger
from streaming.munger import RtpMunger


def test_a_new_stream_starts_at_random_numbers_on_a_keyframe() -> None:
    rtp = RtpMunger(90000)
    assert rtp.waiting_for_start
    assert not rtp.admits(keyframe_start=False)  # a decoder cannot start mid-picture
    assert rtp.admits(keyframe_start=True)
    rtp.start(1000, 5000, now=10.0)
    assert not rtp.waiting_for_start and rtp.admits(keyframe_start=False)
    first_seq, first_ts = rtp.munge(1000, 5000)
    assert first_seq < 32768  # room for many packets before the first wrap
    assert rtp.munge(1001, 8000) == ((first_seq + 1) & 0xFFFF, (first_ts + 3000) & 0xFFFFFFFF)
    assert rtp.source_sequence_number((first_seq + 7) & 0xFFFF) == 1007  # a NACK's packet


def test_the_stream_continues_when_the_source_switches() -> None:
    """A speaker reconnects with new numbering: the viewer's next packet follows the last one by
    one sequence number and by the time that passed (half a second at 90 kHz)."""
    rtp = RtpMunger(90000)
    rtp.start(100, 6000, now=1.0)
    for i in range(3):
        seq, ts = rtp.munge(100 + i, 6000 + 3000 * i)
        rtp.sent(seq, ts, now=1.0 + i / 30)
    last_seq, last_ts = seq, ts

    rtp.switch_source()
    assert rtp.waiting_for_start and not rtp.admits(keyframe_start=False)
    rtp.start(60001, 1_003_000, now=1.0 + 2 / 30 + 0.5)
    seq, ts = rtp.munge(60001, 1_003_000)
    assert seq == (last_seq + 1) & 0xFFFF
    assert ts == (last_ts + 45000) & 0xFFFFFFFF
    assert rtp.munge(60002, 1_006_000) == ((seq + 1) & 0xFFFF, (ts + 3000) & 0xFFFFFFFF)


def test_a_switch_at_once_still_moves_the_timestamp() -> None:
    rtp = RtpMunger(48000)
    rtp.start(1, 960, now=5.0)
    seq, ts = rtp.munge(1, 960)
    rtp.sent(seq, ts, now=5.0)
    rtp.switch_source()
    rtp.start(9, 123, now=5.0)  # no time passed: still one tick on, never the same timestamp
    assert rtp.munge(9, 123) == ((seq + 1) & 0xFFFF, (ts + 1) & 0xFFFFFFFF)


def test_sequence_numbers_wrap_at_16_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(munger.random, "randrange", lambda low, high: high - 3)
    rtp = RtpMunger(90000)
    rtp.start(10, 0, now=0.0)  # the first sequence number is 32765
    rtp.switch_source()
    rtp.last_seq = 0xFFFE  # as if the stream had run on to just before the wrap
    rtp.start(500, 0, now=0.0)
    numbers = [rtp.munge(500 + i, 0)[0] for i in range(4)]
    assert numbers == [0xFFFF, 0, 1, 2]
    assert [rtp.source_sequence_number(n) for n in numbers] == [500, 501, 502, 503]
    # The source wrapping on its own side is carried through as well.
    rtp.switch_source()
    rtp.start(0xFFFF, 0, now=0.0)
    assert (rtp.munge(0, 0)[0] - rtp.munge(0xFFFF, 0)[0]) & 0xFFFF == 1


def test_timestamps_wrap_at_32_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(munger.random, "randrange", lambda low, high: high - 1)
    rtp = RtpMunger(90000)
    rtp.start(0, 1000, now=0.0)
    first = rtp.munge(0, 1000)[1]
    assert first == 0xFFFFFFFF
    assert rtp.munge(1, 4000)[1] == 2999  # 3000 ticks later, past the wrap
    # A switch just before the wrap continues past it by the time that passed.
    seq, ts = rtp.munge(1, 4000)
    rtp.sent(seq, 0xFFFFFF00, now=2.0)
    rtp.switch_source()
    rtp.start(77, 5, now=2.5)  # 0.5 s = 45000 ticks at 90 kHz
    assert rtp.munge(77, 5)[1] == (0xFFFFFF00 + 45000) & 0xFFFFFFFF == 44744


def test_resuming_after_the_c_fan_out_continues_from_what_it_sent() -> None:
    rtp = RtpMunger(90000)
    rtp.start(10, 0, now=0.0)
    rtp.resume(4242, 777, now=3.0, sent_any=True)
    rtp.switch_source()
    rtp.start(1, 1, now=3.0)
    assert rtp.munge(1, 1) == (4243, 778)
    fresh = RtpMunger(90000)
    fresh.resume(0, 0, now=3.0, sent_any=False)  # C sent nothing: still a new stream
    assert fresh.last_seq is None


def test_packets_skipped_leave_no_gap_and_a_nack_still_finds_its_packet() -> None:
    """A temporal layer dropped: the source's packets not sent move the later ones back, so the
    viewer's numbers stay consecutive, and a NACK for a number sent before or after a skip maps
    to the source packet that was sent as it (through the 16-bit wrap)."""
    rtp = RtpMunger(90000)
    rtp.start(65530, 0, now=0.0)
    viewer: dict[int, int] = {}  # viewer's number -> source's
    for source in range(65530, 65530 + 12):
        if source % 3 == 1:  # every third packet is skipped
            rtp.skip()
            continue
        seq, ts = rtp.munge(source & 0xFFFF, 0)
        rtp.sent(seq, ts, now=0.0)
        viewer[seq] = source & 0xFFFF
    numbers = list(viewer)
    assert [(n - numbers[0]) & 0xFFFF for n in numbers] == list(range(len(numbers)))
    assert all(rtp.source_sequence_number(n) == s for n, s in viewer.items())
