"""SECURITY 18: under 5% packet loss and 100 ms of jitter an attendee keeps decoding the stage.

The attendee's side of the network is impaired in the client: every datagram its ICE transport
receives is dropped with probability 5% or held back 50-150 ms (so packets also arrive out of
order). The server's forwarding, retransmissions and keyframe requests have to carry it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import time
from collections.abc import Awaitable, Callable

from media_clients import Conference, Viewer, eventually


class ImpairedNetwork:
    """Wraps an ICE transport's receive: loss and jitter, as a bad home connection would add."""

    def __init__(
        self, recv: Callable[[], Awaitable[bytes]], *, loss: float, delay: float, jitter: float
    ) -> None:
        self._recv = recv
        self._loss, self._delay, self._jitter = loss, delay, jitter
        self._random = random.Random(18)
        self._held: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self._arrived = asyncio.Event()
        self.dropped = self.passed = 0
        self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            data = await self._recv()
            if self._random.random() < self._loss:
                self.dropped += 1
                continue
            self.passed += 1
            due = time.monotonic() + self._delay + self._random.uniform(-self._jitter, self._jitter)
            heapq.heappush(self._held, (due, next(self._order), data))
            self._arrived.set()

    async def recv(self) -> bytes:
        while True:
            if self._held:
                wait = self._held[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._held)[2]
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), wait)
                except TimeoutError:
                    pass
            else:
                self._arrived.clear()
                await self._arrived.wait()

    def stop(self) -> None:
        self._pump.cancel()


def impair(viewer: Viewer) -> ImpairedNetwork:
    ice = viewer.pc.getTransceivers()[0].receiver.transport.transport
    network = ImpairedNetwork(ice._recv, loss=0.05, delay=0.1, jitter=0.05)
    ice._recv = network.recv
    return network


async def test_an_attendee_keeps_decoding_under_loss_and_jitter(conference: Conference) -> None:
    """SECURITY 18: 5% loss, 100 ms delay varying by 100 ms: pictures keep coming."""
    await conference.publish("s1", "speaker")
    await conference.server.set_live(session_id="s1", person_id="speaker", live=True)
    viewer = await conference.watch("s1", "attendee", decode=True)
    await asyncio.wait_for(viewer.frames.get(), 5)
    network = impair(viewer)
    try:
        while not viewer.frames.empty():
            viewer.frames.get_nowait()
        start = time.monotonic()
        decoded = [start]
        while time.monotonic() - start < 6:
            try:
                at, _ = await asyncio.wait_for(viewer.frames.get(), 2.5)
            except TimeoutError:
                break
            decoded.append(at)
        longest_gap = max(b - a for a, b in itertools.pairwise([*decoded, time.monotonic()]))
        fps = (len(decoded) - 1) / (time.monotonic() - start)
        await eventually(lambda: network.dropped > 0, 1, "some loss")
        assert network.dropped / (network.dropped + network.passed) < 0.1
        assert fps >= 12, f"only {fps:.1f} decoded frames per second under loss"
        assert longest_gap < 2.0, f"the picture froze for {longest_gap:.1f} s"
    finally:
        network.stop()
