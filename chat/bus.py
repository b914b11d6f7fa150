"""The fan-out bus: carries each room envelope to every server process, chosen by URL.

Envelopes travel on the process's link (`chat.redis_link`): with `memory://` they are delivered in
this process; with `redis://host:port/db` they are published on one Redis pub/sub channel that
every process subscribes to. Each process hands what arrives to its `Rooms`, which pushes the
already-serialized frame to its sockets. A room's batch of envelopes (chat/writer.py) travels as
one message, and each socket is handed the batch's frames at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

from chat.redis_link import Link

CHANNEL = "dais:live"
_SEP = "\x1f"  # between an envelope's fields
# Between the envelopes of one message (a room's batch): JSON frames escape control characters,
# so neither separator occurs in a body.
_BATCH = "\x1e"


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


Deliver = Callable[[list[Envelope]], None]


class Bus(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def publish_many(self, envelopes: list[Envelope]) -> None:
        """Publish `envelopes` as one message, delivered together and in order (a room's batch:
        one publish, and each socket gets the batch's frames in one go)."""


class LinkBus:
    """Envelopes on the process's link: in this process (`memory://`) or to all (`redis://`)."""

    def __init__(self, link: Link) -> None:
        self._link = link

    async def publish(self, envelope: Envelope) -> None:
        await self._link.publish(CHANNEL, envelope.encode())

    async def publish_many(self, envelopes: list[Envelope]) -> None:
        if envelopes:
            await self._link.publish(CHANNEL, _BATCH.join(e.encode() for e in envelopes))


@asynccontextmanager
async def open_bus(link: Link, deliver: Deliver) -> AsyncIterator[Bus]:
    """The bus on `link`, subscribed before it is returned (the link closes with the app)."""

    def received(data: str) -> None:
        deliver([Envelope.decode(part) for part in data.split(_BATCH)])

    await link.subscribe(CHANNEL, received)
    try:
        yield LinkBus(link)
    finally:
        with suppress(Exception):
            await link.unsubscribe(CHANNEL)
