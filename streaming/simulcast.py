"""Simulcast: a speaker's camera sent as several encodings at once, and which one each viewer gets.

A speaker's page sends its camera as up to three encodings (RFC 8853): the same picture at a
quarter, half and full resolution, each its own RTP stream, told apart by a `rid` (RFC 8851) in
a header extension. The server decodes none of them: it forwards one to each viewer, the best
that viewer's link carries (`LayerChoice`), and switches between them on a keyframe
(streaming/forwarder.py keeps the viewer's stream continuous across a switch).

aiortc does not negotiate simulcast, so this module reads it from the offer's text and writes it
into the answer's (`offered_layers`, `answer_layers`); the packets are routed by their MID and
rid (streaming/aiortc_hooks.py's `route_simulcast`). The page lists its encodings from the
lowest to the highest (`frontend/js/media.js`), and the offer's `a=simulcast` line keeps that
order, so a layer's place in it is its rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
# At most this many layers are received per track; an offer with more has the rest refused.
MAX_LAYERS = 3
_RID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


def _sections(sdp: str) -> list[list[str]]:
    """The SDP's lines, split into the session part and one list per m-section."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        sections[-1].append(line)
    return sections


def _mid(section: list[str]) -> str | None:
    for line in section:
        if line.startswith("a=mid:"):
            return line[6:].strip()
    return None


def offered_layers(offer: str) -> dict[str, list[str]]:
    """{mid: rids} for each video m-section whose offer sends simulcast, lowest layer first.

    Only rids declared `send` with `a=rid` count; alternatives (`a,b`) take the first; a paused
    rid (`~a`) is still a layer (the page may resume it). At most `MAX_LAYERS` per m-section."""
    layers: dict[str, list[str]] = {}
    for section in _sections(offer)[1:]:
        if not section[0].startswith("m=video"):
            continue
        declared: set[str] = set()
        order: list[str] = []
        for line in section:
            if line.startswith("a=rid:"):
                parts = line[6:].split()
                if len(parts) >= 2 and parts[1] == "send" and _RID.match(parts[0]):
                    declared.add(parts[0])
            elif line.startswith("a=simulcast:"):
                words = line[12:].split()
                if len(words) >= 2 and words[0] == "send":
                    for alternatives in words[1].split(";"):
                        rid = alternatives.split(",")[0].lstrip("~")
                        if rid and rid not in order:
                            order.append(rid)
        rids = [rid for rid in order if rid in declared][:MAX_LAYERS]
        mid = _mid(section)
        if len(rids) > 1 and mid is not None:
            layers[mid] = rids
    return layers


def offered_extension_ids(offer: str, mid: str) -> dict[str, int]:
    """{uri: id} of the rid and repaired-rid header extensions the offer's m-section `mid` has."""
    found: dict[str, int] = {}
    for section in _sections(offer)[1:]:
        if _mid(section) != mid:
            continue
        for line in section:
            if line.startswith("a=extmap:"):
                parts = line[9:].split()
                if len(parts) >= 2 and parts[1] in (RID_URI, REPAIRED_RID_URI):
                    number = parts[0].split("/")[0]
                    if number.isdigit():
                        found[parts[1]] = int(number)
    return found


def answer_layers(answer: str, layers: dict[str, list[str]]) -> str:
    """The answer with `a=rid:<rid> recv` and `a=simulcast:recv` in each m-section of `layers`."""
    if not layers:
        return answer
    out: list[str] = []
    for section in _sections(answer):
        out.extend(section)
        rids = layers.get(_mid(section) or "") if section and section[0].startswith("m=") else None
        if rids:
            out.extend(f"a=rid:{rid} recv" for rid in rids)
            out.append("a=simulcast:recv " + ";".join(rids))
    return "\r\n".join(out) + "\r\n"


# -- which layer a viewer gets ---------------------------------------------------------------------

# A layer fits a viewer when its rate is at most this share of the viewer's estimate (the rest is
# for the speaker's sound, retransmissions and the estimate's own error).
FIT_SHARE = 0.85
# A step up needs more room: the higher layer's rate at most this share of the estimate. A
# capped link's estimate hovers around its cap, and a layer that only just fits overflows it at
# each keyframe (bench/adapt.py: at 600 kbit/s, stepping up to the half layer froze the picture
# for a second each time).
UP_SHARE = 0.7
# A step up waits until the higher layer has fitted this long (so a viewer does not flap).
UP_AFTER_S = 3.0
# The layer a viewer gets is kept while its rate is at most this share of the estimate: a
# browser's estimate hovers around what it receives, and losses (streaming/link_estimate.py)
# step it down at once when the link is full.
STAY_SHARE = 1.0
# While the estimate is still climbing from where it started (not `settled`), the layer is
# kept unless its rate is over the estimate by this much: an unimpaired viewer's first estimates
# sit a little under the top layer's rate, a slow link's far under it.
CLIMBING_STAY_SHARE = 1.33


@dataclass(slots=True)
class LayerChoice:
    """One viewer's choice among a track's layers, from its estimate of the viewer's link.

    Down at once, to the highest layer that fits (a link that got worse freezes otherwise); up
    one step at a time, once a higher layer has fitted with room to spare (`UP_SHARE`) for
    `UP_AFTER_S`; the current layer is kept while it fits at all (`STAY_SHARE`, or
    `CLIMBING_STAY_SHARE` while the estimate has not `settled`), unless the link is
    `congested` (losing packets, or a queue growing: streaming/link_estimate.py). With no
    estimate yet, the top layer. Layers not arriving (rate -1: paused, or never sent) are
    passed over."""

    current: int = -1  # index into the layers, lowest first (-1: not chosen yet)
    up_since: float | None = None

    def choose(
        self,
        rates: list[float],
        estimate_bps: float | None,
        now: float,
        *,
        congested: bool = False,
        settled: bool = True,
    ) -> int:
        live = [i for i, rate in enumerate(rates) if rate >= 0] or list(range(len(rates)))
        if estimate_bps is None:
            self.current = live[-1]
            return self.current
        budget = estimate_bps * FIT_SHARE
        fitting = [i for i in live if rates[i] <= budget]
        best = fitting[-1] if fitting else live[0]
        roomy = [i for i in live if rates[i] <= estimate_bps * UP_SHARE]
        if self.current not in live or (
            best < self.current
            and (
                congested
                or rates[self.current]
                > estimate_bps * (STAY_SHARE if settled else CLIMBING_STAY_SHARE)
            )
        ):
            self.current, self.up_since = best, None
        elif roomy and roomy[-1] > self.current:
            if self.up_since is None:
                self.up_since = now
            elif now - self.up_since >= UP_AFTER_S:
                self.current = min(i for i in live if i > self.current)
                self.up_since = None
        else:
            self.up_since = None
        return self.current

    def above(self, rates: list[float]) -> int | None:
        """The next layer up from the current one that is arriving (None: it is the top)."""
        return next((i for i, rate in enumerate(rates) if i > self.current and rate >= 0), None)
