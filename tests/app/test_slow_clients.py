"""Slow and greedy HTTP clients against a real `dais serve`: connections that send their request
head slowly (slowloris) or never finish it are closed at the deadline, whichever HTTP parser runs;
heads over the size limit are refused; past the connection limit requests get 503; and while all
that goes on, attendees' requests and live sockets are served as usual."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.serving import dais_server, demo_attendee, join_live

pytestmark = pytest.mark.slow

# Short, so the attacks below take seconds (the default deadline is 10 s).
HEAD_SECONDS = 3.0
KEEP_ALIVE_SECONDS = 1
# How late past a deadline a close may come on a loaded test machine.
MARGIN = 1.5
REQUEST = b"GET /api/events HTTP/1.1\r\nHost: dais\r\n\r\n"
STARTED_HEAD = b"GET /api/events HTTP/1.1\r\nHost: dais\r\nX-Slow: "


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'dais.db'}"


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`dais serve --demo` with a short request-head deadline and keep-alive, on each parser."""
    data_dir = tmp_path_factory.mktemp(f"serve-{request.param}")
    with dais_server(
        sqlite_url(data_dir),
        data_dir,
        "--demo",
        http_parser=request.param,
        http_request_head_seconds=str(HEAD_SECONDS),
        http_keep_alive_seconds=str(KEEP_ALIVE_SECONDS),
    ) as base:
        yield base


class Client:
    """One raw TCP connection to the server, timed from the moment it opened."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.opened = asyncio.get_running_loop().time()

    @classmethod
    async def connect(cls, base_url: str) -> Client:
        port = int(base_url.rsplit(":", 1)[1])
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.opened

    async def response(self) -> bytes:
        """One whole response (head and a Content-Length body)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        length = next(
            int(line.split(b":")[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        return head + await asyncio.wait_for(self.reader.readexactly(length), 5)

    async def drip_until_closed(self, *, every: float = 1.0, within: float) -> float | None:
        """Sends one more byte of a header value every `every` seconds (none if `every` is 0)
        until the server closes the connection: the seconds from opening to the close, or None
        if it is still open after `within` seconds. The server must answer nothing meanwhile."""
        try:
            while self.elapsed() < within:
                try:
                    answer = await asyncio.wait_for(self.reader.read(4096), every or within)
                except TimeoutError:
                    self.writer.write(b"a")
                    await self.writer.drain()
                    continue
                assert answer == b"", answer
                return self.elapsed()
        except ConnectionError:
            return self.elapsed()
        finally:
            self.writer.close()
        return None

    async def everything(self) -> bytes:
        """All the server sends until it closes the connection (a reset counts as closing)."""
        received = b""
        try:
            while chunk := await asyncio.wait_for(self.reader.read(65536), 5):
                received += chunk
        except ConnectionError:
            pass
        finally:
            self.writer.close()
        return received


async def test_slow_request_heads_are_cut_at_the_deadline_while_attendees_are_served(
    server: str,
) -> None:
    """SECURITY 28: 30 connections each sending their request head one byte a second, and one sending nothing,
    are all closed by the server at the request-head deadline, without an answer; an attendee
    browsing meanwhile gets every answer promptly."""
    loop = asyncio.get_running_loop()
    attackers = []
    for _ in range(30):
        client = await Client.connect(server)
        client.writer.write(STARTED_HEAD)
        attackers.append(client)
    silent = await Client.connect(server)
    closes = [
        asyncio.create_task(client.drip_until_closed(within=HEAD_SECONDS + 10))
        for client in attackers
    ] + [asyncio.create_task(silent.drip_until_closed(every=0, within=HEAD_SECONDS + 10))]

    latencies = []
    async with httpx.AsyncClient(base_url=server) as browser:
        while not all(task.done() for task in closes):
            started = loop.time()
            answer = await browser.get("/api/events")
            latencies.append(loop.time() - started)
            assert answer.status_code == 200
            assert [event["slug"] for event in answer.json()] == ["tackling-stalking"]
            await asyncio.sleep(0.2)
    closed_after = [await task for task in closes]

    assert all(seconds is not None for seconds in closed_after), closed_after
    assert max(closed_after) < HEAD_SECONDS + MARGIN, closed_after  # type: ignore[type-var]
    assert min(closed_after) > HEAD_SECONDS - 0.5, closed_after  # type: ignore[type-var]
    assert len(latencies) >= 10 and max(latencies) < 1.0, latencies


async def test_keep_alive_connections_close_when_idle_and_time_each_request_head(
    server: str,
) -> None:
    """SECURITY 28: after a response, an idle keep-alive connection is closed at the keep-alive timeout; one
    that starts its next request head gets the request-head deadline from that first byte (the
    byte cancels the keep-alive timer, so without its own deadline it would be held for ever)."""
    idle, dripping = await Client.connect(server), await Client.connect(server)
    for client in (idle, dripping):
        client.writer.write(REQUEST)
        assert (await client.response()).startswith(b"HTTP/1.1 200 ")
        client.opened = asyncio.get_running_loop().time()

    dripping.writer.write(STARTED_HEAD)
    idle_closed, dripping_closed = await asyncio.gather(
        idle.drip_until_closed(every=0, within=KEEP_ALIVE_SECONDS + 10),
        dripping.drip_until_closed(every=0.5, within=HEAD_SECONDS + 10),
    )
    assert idle_closed is not None and idle_closed < KEEP_ALIVE_SECONDS + MARGIN
    assert dripping_closed is not None
    assert HEAD_SECONDS - 0.5 < dripping_closed < HEAD_SECONDS + MARGIN


async def test_request_heads_over_the_size_limit_are_refused(server: str) -> None:
    """SECURITY 10 and 28: malformed HTTP input never yields a 5xx. A head over
    DAIS_HTTP_MAX_REQUEST_HEAD_BYTES (16 KiB) is answered 431 and the connection
    closed, whether it arrives whole in one write or grows past the limit piece by piece; a
    large head within the limit is served."""
    within = await Client.connect(server)
    within.writer.write(
        b"GET /api/events HTTP/1.1\r\nHost: dais\r\nX-Big: " + b"a" * 12_000 + b"\r\n\r\n"
    )
    assert (await within.response()).startswith(b"HTTP/1.1 200 ")
    within.writer.close()

    whole = await Client.connect(server)
    whole.writer.write(
        b"GET /api/events HTTP/1.1\r\nHost: dais\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
    )
    growing = await Client.connect(server)
    growing.writer.write(b"GET /api/events HTTP/1.1\r\nHost: dais\r\n")
    for _ in range(3):
        growing.writer.write(b"X-More: " + b"a" * 6_000 + b"\r\n")
        await asyncio.sleep(0.2)
    for client in (whole, growing):
        answer = await client.everything()
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:80]
        assert answer.endswith(b"\r\n\r\nRequest head too large.\n")


async def test_live_sockets_outlive_the_request_head_deadline(server: str) -> None:
    """The deadline is for request heads only: an attendee's live socket, once upgraded and
    joined, keeps working well past it."""
    cookie, session_id = await demo_attendee(server, "Sam")
    live_url = f"{server.replace('http://', 'ws://')}/api/sessions/{session_id}/live"
    ws, joined = await join_live(live_url, cookie, origin=server)
    try:
        assert joined["type"] == "ok", joined
        await asyncio.sleep(HEAD_SECONDS + 1)
        await ws.send(json.dumps({"type": "chat.send", "id": 2, "text": "Still here"}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 5))).get("id") != 2:
            pass
        assert frame["type"] == "ok", frame
    finally:
        await ws.close()


async def test_past_the_connection_limit_requests_get_503(tmp_path: Path) -> None:
    """SECURITY 28: with DAIS_HTTP_MAX_CONNECTIONS open connections (here 4, idle ones included), a request is
    answered 503 at once; once they close, requests are served again."""
    with dais_server(sqlite_url(tmp_path), tmp_path, http_max_connections="4") as base:
        held = [await Client.connect(base) for _ in range(4)]
        await asyncio.sleep(0.2)
        refused = await Client.connect(base)
        refused.writer.write(REQUEST)
        assert (await refused.response()).startswith(b"HTTP/1.1 503 ")
        for client in [*held, refused]:
            client.writer.close()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=base) as browser:
            assert (await browser.get("/api/events")).status_code == 200


@pytest.mark.redis
async def test_each_worker_process_applies_the_deadline(tmp_path: Path) -> None:
    """SECURITY 28: `dais serve --workers 2` hands its limits to every worker process."""
    with dais_server(
        sqlite_url(tmp_path),
        tmp_path,
        "--workers",
        "2",
        bus_url=REDIS_URL,
        http_request_head_seconds=str(HEAD_SECONDS),
    ) as base:
        silent = [await Client.connect(base) for _ in range(4)]
        closed_after = await asyncio.gather(
            *(client.drip_until_closed(every=0, within=HEAD_SECONDS + 10) for client in silent)
        )
        assert all(s is not None and s < HEAD_SECONDS + MARGIN for s in closed_after), closed_after
        async with httpx.AsyncClient(base_url=base) as browser:
            assert (await browser.get("/api/events")).status_code == 200
