"""Simulcast in SDP text and a viewer's choice of layer (streaming/simulcast.py), on their own."""

from __future__ import annotations

from streaming.simulcast import (
    REPAIRED_RID_URI,
    RID_URI,
    UP_AFTER_S,
    LayerChoice,
    answer_layers,
    offered_extension_ids,
    offered_layers,
)

# As Chromium offers a camera in three layers beside a microphone (trimmed).
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:0",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=sendonly",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
        "a=mid:1",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        f"a=extmap:10 {RID_URI}",
        f"a=extmap:11 {REPAIRED_RID_URI}",
        "a=sendonly",
        "a=rid:q send",
        "a=rid:h send",
        "a=rid:f send",
        "a=simulcast:send q;h;~f",
        "",
    ]
)


def test_an_offers_layers_are_read_lowest_first_with_their_extensions() -> None:
    assert offered_layers(OFFER) == {"1": ["q", "h", "f"]}  # a paused layer is still a layer
    assert offered_extension_ids(OFFER, "1") == {RID_URI: 10, REPAIRED_RID_URI: 11}
    assert offered_extension_ids(OFFER, "0") == {}


def test_rids_not_declared_or_one_layer_alone_are_not_simulcast() -> None:
    undeclared = OFFER.replace("a=rid:h send\r\n", "").replace("a=rid:f send\r\n", "")
    assert offered_layers(undeclared) == {}
    alternatives = OFFER.replace("a=simulcast:send q;h;~f", "a=simulcast:send q,x;h")
    assert offered_layers(alternatives) == {"1": ["q", "h"]}


def test_the_answer_receives_each_layer_in_its_own_m_section() -> None:
    answer = "\r\n".join(["v=0", "m=audio 9 X 111", "a=mid:0", "m=video 9 X 96", "a=mid:1", ""])
    written = answer_layers(answer, {"1": ["q", "h", "f"]})
    video = written.split("m=video")[1]
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f" in video
    assert "a=rid" not in written.split("m=video")[0]
    assert answer_layers(answer, {}) == answer


def test_a_viewer_steps_down_at_once_and_up_one_layer_at_a_time() -> None:
    rates = [150_000.0, 450_000.0, 1_300_000.0]
    choice = LayerChoice()
    assert choice.choose(rates, None, 0.0) == 2  # no estimate yet: the top
    assert choice.choose(rates, 300_000, 1.0) == 0  # 0.85 x 300k fits only the lowest
    assert choice.choose(rates, 5_000_000, 2.0) == 0  # plenty: but not at once
    assert choice.choose(rates, 5_000_000, 2.0 + UP_AFTER_S) == 1  # one step
    assert choice.choose(rates, 5_000_000, 2.0 + UP_AFTER_S + 1.0) == 1
    assert choice.choose(rates, 5_000_000, 3.0 + 2 * UP_AFTER_S) == 2
    # A dip resets the wait for the next step up.
    choice = LayerChoice(current=0)
    assert choice.choose(rates, 700_000, 0.0) == 0
    assert choice.choose(rates, 400_000, 2.0) == 0
    assert choice.choose(rates, 700_000, 3.5) == 0
    assert choice.choose(rates, 700_000, 3.5 + UP_AFTER_S) == 1


def test_a_layer_that_stops_is_passed_over_and_a_link_too_slow_for_all_gets_the_lowest() -> None:
    choice = LayerChoice(current=2)
    assert choice.choose([150_000.0, 450_000.0, -1.0], None, 0.0) == 1
    assert choice.choose([150_000.0, 450_000.0, -1.0], 5_000_000, 1.0) == 1
    assert LayerChoice().choose([150_000.0, 450_000.0], 50_000, 0.0) == 0


def test_a_step_up_needs_room_to_spare_but_a_layer_that_fits_is_kept() -> None:
    """On a 600 kbit/s link the half layer (450 kbit/s) fits but leaves no room for its
    keyframes: a viewer on the quarter layer stays there; one already on it keeps it."""
    rates = [150_000.0, 450_000.0, 1_300_000.0]
    low = LayerChoice(current=0)
    assert [low.choose(rates, 600_000, t) for t in (0.0, 2.0, 4.0, 8.0)] == [0, 0, 0, 0]
    assert LayerChoice(current=1).choose(rates, 600_000, 0.0) == 1
