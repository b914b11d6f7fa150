"""The fan-out bus: carries each room envelope to every server process, chosen by URL.

`memory://` delivers in this process; `redis://host:port/db` publishes on one Redis pub/sub
channel that every process subscribes to (redis is imported only then). Each process hands
what arrives to its `Rooms`, which pushes the already-serialized frame to its sockets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("dais.chat.bus")

CHANNEL = "dais:live"
_SEP = "\x1f"


@dataclass(frozen=True, slots=True)
class Envelope:
    """One thing for a room: a frame for an audience, a kick, or a watching count."""

    kind: str  # frame / kick / watching
    room: str
    audience: str  # space-separated audiences (`all`, `staff`, `person:<id>`)
    seq: int | None
    body: str

    def encode(self) -> str:
        seq = "" if self.seq is None else str(self.seq)
        return _SEP.join((self.kind, self.room, self.audience, seq, self.body))

    @classmethod
    def decode(cls, data: str) -> Envelope:
        kind, room, audience, seq, body = data.split(_SEP, 4)
        return cls(kind, room, audience, int(seq) if seq else None, body)


Deliver = Callable[[Envelope], None]


class Bus(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...


class MemoryBus:
    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def publish(self, envelope: Envelope) -> None:
        self._deliver(envelope)


class RedisBus:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def publish(self, envelope: Envelope) -> None:
        await self._client.publish(CHANNEL, envelope.encode())


async def _listen(pubsub: Any, deliver: Deliver) -> None:
    while True:
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    deliver(Envelope.decode(message["data"]))
                except Exception:
                    log.exception("could not deliver a bus message")
        except (ConnectionError, OSError):
            log.warning("Redis bus connection lost; reconnecting")
            await asyncio.sleep(1.0)
        except Exception as error:  # redis-py wraps socket errors in its own types
            if type(error).__module__.startswith("redis"):
                log.warning("Redis bus error (%s); reconnecting", type(error).__name__)
                await asyncio.sleep(1.0)
            else:
                raise


@asynccontextmanager
async def open_bus(url: str, deliver: Deliver) -> AsyncIterator[Bus]:
    """The bus for `url`, subscribed before it is returned and closed on exit."""
    if url.startswith("memory://"):
        yield MemoryBus(deliver)
        return
    if not url.startswith(("redis://", "rediss://")):
        raise ValueError(f"unsupported bus URL scheme: {url.split(':', 1)[0]}")
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    listener = asyncio.create_task(_listen(pubsub, deliver), name="dais-bus-listener")
    try:
        yield RedisBus(client)
    finally:
        listener.cancel()
        with suppress(asyncio.CancelledError):
            await listener
        await pubsub.aclose()
        await client.aclose()
