"""Per-person rate limits: a token bucket per (kind, room, person), kept in this process; and the
limit on refused actions, whose persistent offenders are disconnected."""

from __future__ import annotations

import enum
import time

# Refused actions (`auth.forbidden`, `request.unknown_type`, `request.invalid`) share this kind.
REFUSED = "refused"
# Refused frames answered `rate_limited` that a person may still send (refilling at the
# `refused` rate) before their socket is closed as abusive.
ABUSE_STRIKES = 20
_STRIKES = "refused.strikes"


class Refusal(enum.Enum):
    """What becomes of one more refused action."""

    answered = "answered"  # within the limit: answered as usual (and audited when it is)
    limited = "limited"  # over the limit: `rate_limited`, nothing written
    abusive = "abusive"  # still going after `ABUSE_STRIKES` limited answers: disconnect


class RateLimits:
    def __init__(self, limits: dict[str, tuple[int, float]]) -> None:
        # kind -> (burst, tokens per second); Settings keeps the defaults of kinds left out.
        self._limits = {
            kind: (burst, per_minute / 60.0) for kind, (burst, per_minute) in limits.items()
        }
        self._limits[_STRIKES] = (ABUSE_STRIKES, self._limits[REFUSED][1])
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, kind: str, room: str, person: str) -> bool:
        """Spend one token; False (and nothing spent) when the bucket is empty."""
        burst, rate = self._limits[kind]
        now = time.monotonic()
        key = (kind, room, person)
        tokens, then = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - then) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._forget_full(now)
        return True

    def refuse(self, room: str, person: str) -> Refusal:
        """Count one refused action of a person in a room."""
        if self.take(REFUSED, room, person):
            return Refusal.answered
        if self.take(_STRIKES, room, person):
            return Refusal.limited
        return Refusal.abusive

    def _forget_full(self, now: float) -> None:
        keep = {}
        for key, (tokens, then) in self._buckets.items():
            burst, rate = self._limits[key[0]]
            if tokens + (now - then) * rate < burst:
                keep[key] = (tokens, then)
        self._buckets = keep
