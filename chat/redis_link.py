"""The process's one link to the other server processes: pub/sub channels, chosen by URL.

`redis://host:port/db` is one Redis client (its pool serves keys, scripts and publishing) and one
pub/sub connection whose single listener hands each channel's messages to the handler registered
for it: the event bus (`chat.bus`) and stage hosting (`chat.stage_hosts`) share them. `memory://`
delivers in this process and has no Redis (`redis` is None): everything is local. Built once in the
app's lifespan and closed there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, Protocol

log = logging.getLogger("dais.chat.redis_link")

Handler = Callable[[str], None]  # what arrives on a channel; must not block


class Link(Protocol):
    # The Redis client for keys and scripts; None when every process is this one (`memory://`).
    redis: Any

    async def subscribe(self, channel: str, handler: Handler) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, data: str) -> int: ...

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the link was lost (what was published meanwhile is gone)."""


def _handle(handlers: dict[str, Handler], channel: str, data: str) -> None:
    handler = handlers.get(channel)
    if handler is None:
        return
    try:
        handler(data)
    except Exception:
        log.exception("could not handle a message on %s", channel)


class MemoryLink:
    """Channels inside this process: what is published reaches this process's handlers at once."""

    redis: Any = None

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Never lost: nothing to call."""

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self._handlers[channel] = handler

    async def unsubscribe(self, channel: str) -> None:
        self._handlers.pop(channel, None)

    async def publish(self, channel: str, data: str) -> int:
        """Deliver now; the number of subscribers that received it (0 or 1)."""
        if channel not in self._handlers:
            return 0
        _handle(self._handlers, channel, data)
        return 1


class RedisLink:
    """One Redis client and one listening pub/sub connection for the whole process."""

    def __init__(self, client: Any, name: str) -> None:
        self.redis = client
        self.name = name  # CLIENT SETNAME of its connections, to find them in CLIENT LIST
        self._pubsub = client.pubsub()
        self._handlers: dict[str, Handler] = {}
        self._listener: asyncio.Task[None] | None = None
        self._on_lost: list[Callable[[], None]] = []

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the pub/sub connection was lost: what was published while it
        was down never arrives."""
        self._on_lost.append(callback)

    def _lost(self) -> None:
        for callback in self._on_lost:
            try:
                callback()
            except Exception:
                log.exception("a lost-link callback failed")

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Hand what arrives on `channel` to `handler`, from the moment this returns."""
        if channel in self._handlers:
            raise ValueError(f"already subscribed to {channel}")
        self._handlers[channel] = handler
        await self._pubsub.subscribe(channel)
        # redis-py's listen() ends while nothing is subscribed: start listening after the first.
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="dais-redis-link")

    async def unsubscribe(self, channel: str) -> None:
        """Nothing more from `channel` (publishers see one subscriber fewer)."""
        if self._handlers.pop(channel, None) is not None:
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, data: str) -> int:
        """Publish; the number of processes subscribed to `channel` that received it."""
        receivers: int = await self.redis.publish(channel, data)
        return receivers

    async def _listen(self) -> None:
        while True:
            try:
                async for message in self._pubsub.listen():
                    if message.get("type") == "message":
                        _handle(self._handlers, message["channel"], message["data"])
                # listen() ends while nothing is subscribed (all channels given up, at shutdown).
                await asyncio.sleep(0.1)
            except (ConnectionError, OSError):
                log.warning("Redis link lost; reconnecting")
                self._lost()
                await asyncio.sleep(1.0)
            except Exception as error:  # redis-py wraps socket errors in its own types
                if type(error).__module__.startswith("redis"):
                    # redis-py reconnects and subscribes to every channel again by itself.
                    log.warning("Redis link error (%s); reconnecting", type(error).__name__)
                    self._lost()
                    await asyncio.sleep(1.0)
                else:
                    raise

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
        await self._pubsub.aclose()
        await self.redis.aclose()


@asynccontextmanager
async def open_link(url: str) -> AsyncIterator[MemoryLink | RedisLink]:
    """The link for `url` (`memory://` or `redis://`), closed on exit."""
    if url.startswith("memory://"):
        yield MemoryLink()
        return
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"unsupported bus URL scheme: {url.split(':', 1)[0]}")
    from redis.asyncio import Redis

    name = f"dais-link-{uuid.uuid4().hex[:12]}"
    link = RedisLink(Redis.from_url(url, decode_responses=True, client_name=name), name)
    try:
        yield link
    finally:
        await link.close()
