"""Live-gateway benchmark, loopback only; stops by itself.

Starts Dais under uvicorn (a subprocess) on a fresh database, connects N attendee sockets from
several client processes, and has the chair approve questions and people chat at a steady rate
(10 broadcasts per second by default). Each broadcast carries its send time, so clients measure
delivery latency. Two phases: every socket reading, then 5% of the sockets not reading.

    .venv/bin/python bench/live.py --sockets 2000
    .venv/bin/python bench/live.py --sockets 5000 --seconds 20

The last line reads `sockets=N deliveries_per_cpu_s=N p99_ms=N stalled_rss_growth_mb=N`.

With `--signalling-storm VIEWERS` it measures something else instead: a chat message's round trip
while VIEWERS attendees of the same room call `media.watch` at once, the chair live with a camera
and a microphone (issue 10's target: p99 under 50 ms for 50 viewers).

    .venv/bin/python bench/live.py --sockets 60 --signalling-storm 50

Its last line reads `viewers=N chat_p99_ms=N chat_alone_p99_ms=N watch_max_ms=N`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARK = '"text":"bench t='


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the conference ------------------------------------------------------------------------------


async def make_world(database_url: str, attendees: int) -> dict[str, object]:
    """An event, a session, a chair, and attendees with access tokens (inserted in bulk)."""
    from datetime import timedelta

    from app.agenda.models import Session
    from app.auth.models import AccessToken
    from app.auth.service import hash_token
    from app.db import make_engine, make_sessionmaker, new_id, utcnow
    from app.event.models import Event
    from app.people.models import Organiser, Participant, SessionRole

    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as db:
        organiser = Organiser(email="bench@example.org", name="Bench", password_hash="-")
        db.add(organiser)
        await db.flush()
        event = Event(
            slug="bench",
            organiser_id=organiser.id,
            title="Bench",
            starts_on=date(2027, 3, 4),
            ends_on=date(2027, 3, 4),
            published=True,
        )
        db.add(event)
        await db.flush()
        session = Session(
            event_id=event.id,
            title="Bench session",
            starts_at=datetime(2027, 3, 4, 10, tzinfo=UTC),
            ends_at=datetime(2027, 3, 4, 11, tzinfo=UTC),
        )
        db.add(session)
        await db.flush()
        people = [
            Participant(id=new_id(), event_id=event.id, kind="attendee", display_name=f"A{n}")
            for n in range(attendees + 1)
        ]
        chair = Participant(id=new_id(), event_id=event.id, kind="invited", display_name="Chair")
        db.add_all([*people, chair])
        await db.flush()
        db.add(SessionRole(session_id=session.id, participant_id=chair.id, role="chair"))
        tokens = {p.id: secrets.token_urlsafe(32) for p in [*people, chair]}
        expires = utcnow() + timedelta(days=1)
        db.add_all(
            AccessToken(token_hash=hash_token(t), participant_id=pid, expires_at=expires)
            for pid, t in tokens.items()
        )
        await db.commit()
    await engine.dispose()
    return {
        "session_id": session.id,
        "attendees": [tokens[p.id] for p in people[:-1]],
        "chatter": tokens[people[-1].id],
        "chair": tokens[chair.id],
        "chair_id": chair.id,
    }


# -- attendee client processes -------------------------------------------------------------------
#
# Cheap on purpose: on a small machine the clients share the CPU with the server, so each socket
# is a bare asyncio protocol on uvloop that speaks just enough websocket (handshake, masked join,
# frame headers, pong, close) to measure delivery. Stalled sockets stop reading from the kernel.

MARK_BYTES = MARK.encode()
ZERO_MASK = b"\x00\x00\x00\x00"  # a valid client mask that leaves the payload as it is


def client_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + ZERO_MASK + payload


class Tally:
    def __init__(self) -> None:
        self.deliveries = 0
        self.latencies: list[float] = []


class RawSocket(asyncio.Protocol):
    def __init__(self, request: bytes, join: bytes, tally: Tally) -> None:
        self.request, self.join, self.tally = request, join, tally
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.joined: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.state = "open"

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == "open":
            self.state = "1006"
        if not self.joined.done():
            self.joined.set_exception(ConnectionError("lost before joining"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.joined.set_exception(ConnectionError(buffer[:40].decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            buffer = buffer[end + 4 :]
            self.transport.write(self.join)  # type: ignore[union-attr]
        pos, n = 0, len(buffer)
        while n - pos >= 2:
            size, header = buffer[pos + 1] & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if n - pos < header + size:
                break
            self.frame(buffer[pos] & 0x0F, buffer[pos + header : pos + header + size])
            pos += header + size
        self.buffer = buffer[pos:] if pos < n else b""

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:
            at = payload.find(MARK_BYTES)
            if at >= 0:
                start = at + len(MARK_BYTES)
                sent = float(payload[start : payload.find(b" ", start)])
                self.tally.latencies.append(time.time() - sent)
                self.tally.deliveries += 1
            elif not self.joined.done():
                if b'"type":"ok"' in payload:
                    self.joined.set_result(None)
                elif b'"type":"error"' in payload:
                    self.joined.set_exception(RuntimeError(payload.decode()))
        elif opcode == 9:
            self.transport.write(client_frame(10, payload))  # type: ignore[union-attr]
        elif opcode == 8:
            self.state = str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "1005"
            self.transport.write(client_frame(8, payload[:2]))  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]


def client_process(
    url: str, origin: str, tokens: list[str], stall_from: int, control, results
) -> None:  # type: ignore[no-untyped-def]
    import uvloop

    raise_fd_limit()
    uvloop.run(_client(url, origin, tokens, stall_from, control, results))


async def _client(url, origin, tokens, stall_from, control, results) -> None:  # type: ignore[no-untyped-def]
    import base64

    tally = Tally()
    gate = asyncio.Semaphore(25)
    hostport, path = url.removeprefix("ws://").split("/", 1)
    host, port = hostport.split(":")
    loop = asyncio.get_running_loop()

    async def connect(token: str) -> RawSocket | None:
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
        ).encode()
        join = client_frame(1, json.dumps({"id": 1, "type": "room.join", "token": token}).encode())
        async with gate:
            for _ in range(5):
                try:
                    _, ws = await loop.create_connection(
                        lambda: RawSocket(request, join, tally), host, int(port)
                    )
                    await asyncio.wait_for(ws.joined, 120)
                    return ws
                except (OSError, TimeoutError, ConnectionError):
                    await asyncio.sleep(0.5)
            return None

    connected = await asyncio.gather(*(connect(t) for t in tokens))
    sockets = [ws for ws in connected if ws is not None]
    stalling = [ws for i, ws in enumerate(connected) if ws is not None and i >= stall_from]
    results.put(("connected", len(sockets)))
    while True:
        command = await loop.run_in_executor(None, control.get)
        if command == "report":
            results.put(("report", tally.deliveries, tally.latencies))
            tally.deliveries, tally.latencies = 0, []
        elif command == "stall":
            for ws in stalling:
                ws.transport.pause_reading()  # type: ignore[union-attr]
        elif command == "stop":
            break
    codes: dict[str, int] = {}
    for ws in sockets:
        codes[ws.state] = codes.get(ws.state, 0) + 1
    results.put(("stopped", codes))


# -- the driver ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def drive(url: str, origin: str, world: dict, rate: float, seconds: float) -> int:  # type: ignore[type-arg]
    """Chat and approved questions at `rate` broadcasts per second for `seconds`."""
    import websockets

    async def join(token: str):  # type: ignore[no-untyped-def]
        ws = await websockets.connect(url, origin=origin, compression=None, max_queue=None)
        await ws.send(json.dumps({"id": 0, "type": "room.join", "token": token}))
        return ws

    chair = DriverSocket(await join(world["chair"]))
    chatter = DriverSocket(await join(world["chatter"]))
    sent, n = 0, 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        n += 1
        text = f"bench t={time.time():.6f} " + "x" * 80
        if n % 2:
            await chatter.ws.send(json.dumps({"id": n, "type": "chat.send", "text": text}))
        else:
            asked = chatter.question_id(n)
            await chatter.ws.send(json.dumps({"id": n, "type": "question.ask", "text": text}))
            approve = {"id": n, "type": "question.approve", "question_id": await asked}
            await chair.ws.send(json.dumps(approve))
        sent += 1
        await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
    await asyncio.sleep(1.0)
    for driver in (chair, chatter):
        driver.task.cancel()
        await driver.ws.close()
    return sent


class DriverSocket:
    """A driver's socket, read in the background; hands over question ids from `ok` replies."""

    def __init__(self, ws) -> None:  # type: ignore[no-untyped-def]
        self.ws = ws
        self.waiting: dict[int, asyncio.Future[str]] = {}
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for frame in self.ws:
            if '"type":"ok"' in frame and '"question"' in frame:
                data = json.loads(frame)
                future = self.waiting.pop(data["id"], None)
                if future is not None:
                    future.set_result(data["result"]["question"]["id"])

    async def question_id(self, request_id: int) -> str:
        future = self.waiting[request_id] = asyncio.get_running_loop().create_future()
        return await asyncio.wait_for(future, 10)


async def signalling_storm(url: str, origin: str, world: dict[str, Any], viewers: int) -> str:
    """The chair goes live with a camera and a microphone (aiortc); one attendee chats (each
    message's round trip: sent until its `message.posted` comes back) while `viewers` other
    attendees of the same room ask to watch the stage at the same moment; before the storm, the
    same chat alone. The headline line of this phase."""
    import websockets
    from aiortc import RTCPeerConnection

    sys.path.insert(0, str(ROOT / "tests" / "streaming"))
    from media_clients import SyntheticCamera, Tone, apply_answer, publisher_offer, wait_connected

    async def joined(token: str) -> websockets.ClientConnection:
        ws = await websockets.connect(url, origin=origin, compression=None, max_queue=None)
        await ws.send(json.dumps({"id": "join", "type": "room.join", "token": token}))
        while json.loads(await ws.recv()).get("id") != "join":
            pass
        return ws

    async def request(ws: websockets.ClientConnection, type_: str, **fields: Any) -> Any:
        await ws.send(json.dumps({"id": type_, "type": type_, **fields}))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("id") == type_:
                assert frame["type"] == "ok", frame
                return frame["result"]

    chair = await joined(world["chair"])
    publisher = RTCPeerConnection()
    offer = await publisher_offer(publisher, [SyntheticCamera(), Tone()])
    await apply_answer(publisher, (await request(chair, "media.publish", sdp=offer))["sdp"])
    await wait_connected(publisher)
    await request(chair, "stage.go_live", person_id=world["chair_id"])
    tokens = world["attendees"]
    chatter = await joined(tokens[0])
    watchers = [await joined(token) for token in tokens[1 : viewers + 1]]
    posted: dict[str, asyncio.Future[float]] = {}

    async def read_chat() -> None:
        async for text in chatter:
            frame = json.loads(text)
            if frame.get("type") == "message.posted":
                waiter = posted.pop(frame["message"]["text"], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())

    reader = asyncio.create_task(read_chat())

    async def chat_round_trips(until: asyncio.Event | None, count: int) -> list[float]:
        trips = []
        for n in range(count):
            if until is not None and until.is_set() and n >= 10:
                break
            text = f"storm {secrets.token_hex(4)}"
            posted[text] = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            await chatter.send(json.dumps({"id": n, "type": "chat.send", "text": text}))
            trips.append(await asyncio.wait_for(posted[text], 30) - started)
            await asyncio.sleep(0.02)
        return trips

    quiet = await chat_round_trips(None, 50)
    done = asyncio.Event()

    async def watch(ws: websockets.ClientConnection) -> float:
        started = time.perf_counter()
        await ws.send(json.dumps({"id": "watch", "type": "media.watch"}))
        while json.loads(await ws.recv()).get("id") != "watch":
            pass
        return time.perf_counter() - started

    async def storm() -> list[float]:
        try:
            return await asyncio.gather(*(watch(ws) for ws in watchers))
        finally:
            done.set()

    during, watch_times = await asyncio.gather(chat_round_trips(done, 10_000), storm())
    reader.cancel()
    for ws in [chatter, *watchers, chair]:
        await ws.close()
    await publisher.close()
    ms = 1000
    print(
        f"[signalling storm] chat round trip alone: p50 {percentile(quiet, 50) * ms:.1f} ms, "
        f"p99 {percentile(quiet, 99) * ms:.1f} ms; while {viewers} viewers call media.watch at "
        f"once ({len(during)} messages): p50 {percentile(during, 50) * ms:.1f} ms, "
        f"p99 {percentile(during, 99) * ms:.1f} ms, max {max(during) * ms:.1f} ms; "
        f"media.watch answered in p50 {percentile(watch_times, 50) * ms:.0f} ms, "
        f"max {max(watch_times) * ms:.0f} ms",
        flush=True,
    )
    return (
        f"viewers={viewers} chat_p99_ms={percentile(during, 99) * ms:.0f} "
        f"chat_alone_p99_ms={percentile(quiet, 99) * ms:.0f} "
        f"watch_max_ms={max(watch_times) * ms:.0f}"
    )


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--rate", type=float, default=10.0, help="broadcasts per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--stalled", type=float, default=0.05, help="share of sockets not reading")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument(
        "--signalling-storm",
        type=int,
        default=0,
        metavar="VIEWERS",
        help="instead of the phases above: chat round trips while VIEWERS attendees of the same "
        "room call media.watch at once (needs --sockets above VIEWERS)",
    )
    args = parser.parse_args()
    raise_fd_limit()

    from app.migrate import upgrade

    workdir = Path(tempfile.mkdtemp(prefix="dais-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    upgrade(database_url)
    world = asyncio.run(make_world(database_url, args.sockets))
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/api/sessions/{world['session_id']}/live"
    env = os.environ | {
        "DAIS_DATABASE_URL": database_url,
        "DAIS_DATA_DIR": str(workdir),
        "DAIS_BASE_URL": origin,
        "DAIS_SECRET_KEY": "bench",
        "DAIS_LIVE_RATE_LIMITS": json.dumps(
            {k: [100000, 1e9] for k in ("chat", "question", "vote", "reaction")}
        ),
        # Thousands of attendees join from this one address: lift the per-client join throttle.
        "DAIS_THROTTLES": json.dumps({"join-client": [1_000_000, 60.0]}),
    }
    profile = os.environ.get("BENCH_PROFILE")
    prefix = (
        f"import cProfile, atexit, signal, sys; p = cProfile.Profile(); p.enable(); signal.signal(signal.SIGTERM, lambda *a: (p.disable(), p.dump_stats({profile!r}), sys.exit(0))); "
        if profile
        else ""
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            prefix + "import resource, uvicorn; h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
            "resource.setrlimit(resource.RLIMIT_NOFILE, (h, h)); "
            f"uvicorn.run('app.main:create_app', factory=True, host='127.0.0.1', port={port}, "
            "ws='websockets-sansio', ws_per_message_deflate=False, backlog=8192, "
            "log_level='warning', access_log=False)",
        ],
        cwd=ROOT,
        env=env,
    )
    processes = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        if args.signalling_storm:
            assert len(world["attendees"]) > args.signalling_storm  # type: ignore[arg-type]
            print(asyncio.run(signalling_storm(url, origin, world, args.signalling_storm)))
            return

        context = mp.get_context("spawn")
        results = context.Queue()
        controls = []
        tokens = world["attendees"]
        per = -(-len(tokens) // args.clients)
        started = time.monotonic()
        for i in range(args.clients):
            mine = tokens[i * per : (i + 1) * per]
            control = context.Queue()
            stall_from = len(mine) - round(len(mine) * args.stalled)
            process = context.Process(
                target=client_process, args=(url, origin, mine, stall_from, control, results)
            )
            process.start()
            processes.append(process)
            controls.append(control)
        connected = sum(results.get(timeout=600)[1] for _ in processes)
        print(
            f"connected {connected} sockets in {time.monotonic() - started:.1f} s; server RSS {rss_mb(server.pid):.0f} MB",
            flush=True,
        )

        def clients_cpu() -> float:
            return sum(cpu_seconds(p.pid) for p in processes)  # type: ignore[arg-type]

        def phase(name: str) -> tuple[float, float, list[float], float]:
            cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
            client_cpu0 = clients_cpu()
            rss0 = rss_mb(server.pid)
            sent = asyncio.run(drive(url, origin, world, args.rate, args.seconds))
            cpu, wall = cpu_seconds(server.pid) - cpu0, time.monotonic() - t0
            client_cpu = clients_cpu() - client_cpu0
            for control in controls:
                control.put("report")
            deliveries, latencies = 0, []
            for _ in processes:
                _, count, values = results.get(timeout=120)
                deliveries += count
                latencies += values
            rss1 = rss_mb(server.pid)
            print(
                f"[{name}] broadcasts={sent} deliveries={deliveries} "
                f"deliveries/s={deliveries / wall:.0f} server_cpu={cpu:.2f}s "
                f"client_cpu={client_cpu:.2f}s wall={wall:.1f}s "
                f"deliveries/cpu_s={deliveries / max(cpu, 1e-9):.0f} "
                f"server_us_per_delivery={cpu / max(deliveries, 1) * 1e6:.1f} "
                f"latency_ms p50={percentile(latencies, 50) * 1000:.1f} "
                f"p99={percentile(latencies, 99) * 1000:.1f} max={max(latencies, default=0) * 1000:.1f} "
                f"rss_mb={rss0:.0f}->{rss1:.0f}",
                flush=True,
            )
            return (
                deliveries / max(cpu, 1e-9),
                percentile(latencies, 99) * 1000,
                latencies,
                rss1 - rss0,
            )

        per_cpu, p99, _, _ = phase("all reading")
        for control in controls:
            control.put("stall")
        stalled_per_cpu, stalled_p99, _, growth = phase(f"{args.stalled:.0%} not reading")
        for control in controls:
            control.put("stop")
        codes: dict[str, int] = {}
        for _ in processes:
            for code, count in results.get(timeout=60)[1].items():
                codes[code] = codes.get(code, 0) + count
        print(f"sockets at the end, by state or close code: {codes}")
        print(
            f"sockets={connected} deliveries_per_cpu_s={per_cpu:.0f} p99_ms={max(p99, stalled_p99):.0f} "
            f"stalled_rss_growth_mb={growth:.0f}"
        )
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
