"""Per-person rate limits: a token bucket per (kind, room, person), kept in this process."""

from __future__ import annotations

import time


class RateLimits:
    def __init__(self, limits: dict[str, tuple[int, float]]) -> None:
        # kind -> (burst, tokens per second)
        self._limits = {
            kind: (burst, per_minute / 60.0) for kind, (burst, per_minute) in limits.items()
        }
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

    def _forget_full(self, now: float) -> None:
        keep = {}
        for key, (tokens, then) in self._buckets.items():
            burst, rate = self._limits[key[0]]
            if tokens + (now - then) * rate < burst:
                keep[key] = (tokens, then)
        self._buckets = keep
