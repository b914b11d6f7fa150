"""Throttles for what costs the server most per request: signing in, registering, joining a room.

Each throttle counts hits on a key in a fixed window. Keys name an account (an email) or a
client; a client is its network address, kept only as a keyed hash, in memory or in Redis with
the window as its lifetime, and never stored in the database or logged. With a Redis bus every
process counts in Redis, so a client cannot spread its attempts over processes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from app.errors import RateLimited

# The throttles, by name; their numbers are settings (`Settings.throttles`).
SIGN_IN_PER_ACCOUNT = "sign-in-account"
SIGN_IN_PER_CLIENT = "sign-in-client"
REGISTRATIONS_PER_CLIENT = "register-client"
JOINS_PER_SIGN_IN = "join-sign-in"
JOINS_PER_CLIENT = "join-client"


class Counter(Protocol):
    async def add(self, key: str, window: float) -> tuple[int, float]:
        """Count one hit; the hits now and seconds until the window ends."""
        ...

    async def clear(self, key: str) -> None: ...


class MemoryCounter:
    """Windows in this process (one process serves everything)."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}

    async def add(self, key: str, window: float) -> tuple[int, float]:
        now = time.monotonic()
        hits, ends = self._windows.get(key, (0, now))
        if ends <= now:
            hits, ends = 0, now + window
        self._windows[key] = (hits + 1, ends)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
        return hits + 1, ends - now

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)


class RedisCounter:
    """Windows in Redis, shared by every process: a key per window, expiring with it."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def add(self, key: str, window: float) -> tuple[int, float]:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            # Only a new key gets the window; later hits do not extend it.
            pipe.pexpire(key, int(window * 1000), nx=True)
            pipe.pttl(key)
            hits, _, ttl = await pipe.execute()
        return int(hits), max(ttl, 0) / 1000.0

    async def clear(self, key: str) -> None:
        await self._client.delete(key)


class Throttles:
    """The throttles of this process, over one counter; keys are hashed before use."""

    def __init__(
        self, counter: Counter, *, limits: dict[str, tuple[int, float]], secret: bytes
    ) -> None:
        self._counter = counter
        self._limits = limits
        self._secret = secret

    def _key(self, name: str, subject: str) -> str:
        digest = hmac.new(self._secret, subject.encode(), hashlib.sha256).hexdigest()[:24]
        return f"dais:throttle:{name}:{digest}"

    async def spend(self, name: str, subject: str) -> None:
        """Count one hit of throttle `name` by `subject`; `rate_limited` (with how long to wait)
        when it is one too many for the window."""
        hits, window = self._limits[name]
        count, left = await self._counter.add(self._key(name, subject), window)
        if count > hits:
            raise _refusal(left)

    async def forget(self, name: str, subject: str) -> None:
        """Start `subject` afresh (a right password clears its account's count)."""
        await self._counter.clear(self._key(name, subject))


def _refusal(seconds: float) -> RateLimited:
    wait = max(1, round(seconds + 0.5))
    return RateLimited(
        "rate_limited",
        f"Too many attempts. Please try again in {wait} seconds.",
        retry_after=wait,
    )


@asynccontextmanager
async def open_throttles(
    bus_url: str, *, limits: dict[str, tuple[int, float]], secret: bytes
) -> AsyncIterator[Throttles]:
    """Throttles counting in Redis when the bus is Redis (every process agrees), else here."""
    if not bus_url.startswith(("redis://", "rediss://")):
        yield Throttles(MemoryCounter(), limits=limits, secret=secret)
        return
    from redis.asyncio import Redis

    client = Redis.from_url(bus_url, decode_responses=True)
    try:
        yield Throttles(RedisCounter(client), limits=limits, secret=secret)
    finally:
        await client.aclose()
