"""Live-gateway fixtures: the real app under a real uvicorn on a free loopback port, a small
conference (organiser, chair, speaker, attendees) and a websocket client that speaks the protocol.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from redis.asyncio import Redis
from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.asyncio.client import ClientConnection

from app.agenda.models import Session
from app.auth.service import hash_password, issue_token
from app.db import make_engine, make_sessionmaker
from app.event.models import Event
from app.main import create_app
from app.people.models import Organiser, Participant, SessionRole
from app.settings import Settings
from tests.conftest import REDIS_URL

RECEIVE_TIMEOUT = 3.0
ORGANISER_PASSWORD = "correct horse battery"


class _Any:
    """Equal to anything: for ids and timestamps inside whole-frame assertions."""

    def __eq__(self, other: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "ANY"


ANY = _Any()


@dataclass
class Server:
    url: str
    settings: Settings
    app: Any

    @property
    def origin(self) -> str:
        return self.url

    def live_url(self, session_id: str) -> str:
        return f"{self.url.replace('http://', 'ws://')}/api/sessions/{session_id}/live"


ServerFactory = Callable[..., Awaitable[Server]]


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def start_server(database_url: str, tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Starts the app under uvicorn in this process; settings can be overridden per test."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(
        send_buffer: int | None = None,
        deflate: bool = False,
        ping_interval: float = 20.0,
        **overrides: Any,
    ) -> Server:
        """`send_buffer` fixes the kernel send buffer of accepted sockets (as a slow network
        would), so a stalled reader backs up into the server quickly. uvicorn is configured as
        `dais serve` does (no permessage-deflate) unless `deflate`; it pings each socket every
        `ping_interval` seconds."""
        sock = free_socket()
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        values: dict[str, Any] = {
            "database_url": database_url,
            "data_dir": tmp_path,
            "secret_key": "test-secret-key",
            "base_url": url,
        }
        settings = Settings(**(values | overrides))
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            log_level="warning",
            ws="websockets-sansio",
            ws_per_message_deflate=deflate,
            ws_ping_interval=ping_interval,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        running.append((server, task))
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        return Server(url=url, settings=settings, app=app)

    yield start
    for server, _ in running:
        server.should_exit = True
    await asyncio.wait_for(asyncio.gather(*(task for _, task in running)), 15)


@pytest.fixture
async def server(start_server: ServerFactory) -> Server:
    return await start_server()


@dataclass
class World:
    """One published event with one session and the people in it; tokens are access tokens."""

    event_id: str
    session_id: str
    organiser_id: str
    organiser: str
    chair_id: str
    chair: str
    speaker_id: str
    speaker: str
    attendee_ids: list[str] = field(default_factory=list)
    attendees: list[str] = field(default_factory=list)
    organiser_email: str = "organiser@example.org"


async def make_world(
    database_url: str,
    *,
    attendees: int = 3,
    moderation_required: bool = True,
    anonymous_questions_allowed: bool = True,
    chair_sees_asker_names: bool = False,
    attendees_see_each_other: bool = False,
    word_filter: list[str] | None = None,
    retention_days: int = 30,
    tag: str = "",
) -> World:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            organiser = Organiser(
                email=f"organiser{tag}@example.org",
                name="Olu Organiser",
                password_hash=hash_password(ORGANISER_PASSWORD),
            )
            db.add(organiser)
            await db.flush()
            event = Event(
                slug=f"tackling-stalking{tag}",
                organiser_id=organiser.id,
                title="Tackling Stalking",
                starts_on=date(2027, 3, 4),
                ends_on=date(2027, 3, 4),
                published=True,
                attendees_see_each_other=attendees_see_each_other,
                word_filter=word_filter or [],
                retention_days=retention_days,
            )
            db.add(event)
            await db.flush()
            session = Session(
                event_id=event.id,
                title="Understanding the psychology behind stalking",
                starts_at=datetime(2027, 3, 4, 11, 15, tzinfo=UTC),
                ends_at=datetime(2027, 3, 4, 12, 0, tzinfo=UTC),
                moderation_required=moderation_required,
                anonymous_questions_allowed=anonymous_questions_allowed,
                chair_sees_asker_names=chair_sees_asker_names,
            )
            db.add(session)
            chair = Participant(event_id=event.id, kind="invited", display_name="Saskia Garner")
            speaker = Participant(event_id=event.id, kind="invited", display_name="Dr Emma Short")
            people = [
                Participant(event_id=event.id, kind="attendee", display_name=name)
                for name in ["Ada", "Bea", "Cy", "Dee", "Eve", "Fay"][:attendees]
            ]
            db.add_all([chair, speaker, *people])
            await db.flush()
            db.add(SessionRole(session_id=session.id, participant_id=chair.id, role="chair"))
            db.add(SessionRole(session_id=session.id, participant_id=speaker.id, role="speaker"))
            await db.commit()
            return World(
                event_id=event.id,
                session_id=session.id,
                organiser_id=organiser.id,
                organiser=await issue_token(db, days=1, organiser_id=organiser.id),
                chair_id=chair.id,
                chair=await issue_token(db, days=1, participant_id=chair.id),
                speaker_id=speaker.id,
                speaker=await issue_token(db, days=1, participant_id=speaker.id),
                attendee_ids=[p.id for p in people],
                attendees=[await issue_token(db, days=1, participant_id=p.id) for p in people],
                organiser_email=organiser.email,
            )
    finally:
        await engine.dispose()


@pytest.fixture
async def world(database_url: str) -> World:
    return await make_world(database_url)


class Live:
    """A browser tab's socket: sends actions with request ids, receives frames with timeouts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.inbox: deque[dict[str, Any]] = deque()
        self.joined: dict[str, Any] | None = None

    @classmethod
    async def connect(
        cls,
        server: Server,
        session_id: str,
        *,
        origin: str | None = "",
        cookie: str | None = None,
        **options: Any,
    ) -> Live:
        headers = {"Cookie": f"dais_session={cookie}"} if cookie else None
        ws = await websockets.connect(
            server.live_url(session_id),
            origin=server.origin if origin == "" else origin,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=5,
            close_timeout=2,
            **options,
        )
        return cls(ws)

    @classmethod
    async def join(
        cls, server: Server, session_id: str, token: str | None, *, last_seq: int | None = None
    ) -> Live:
        """Connect and join; the join reply is kept in `.joined` (its `result`)."""
        live = await cls.connect(server, session_id)
        fields: dict[str, Any] = {"token": token}
        if last_seq is not None:
            fields["last_seq"] = last_seq
        reply = await live.request("room.join", **fields)
        assert reply["type"] == "ok", reply
        live.joined = reply["result"]
        return live

    async def send(self, type_: str, **fields: Any) -> int:
        request_id = next(self._ids)
        await self.ws.send(json.dumps({"id": request_id, "type": type_, **fields}))
        return request_id

    async def recv(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        if self.inbox:
            return self.inbox.popleft()
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def request(self, type_: str, **fields: Any) -> dict[str, Any]:
        """Send an action and return its reply; pushed events seen meanwhile stay in the inbox."""
        request_id = await self.send(type_, **fields)
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), RECEIVE_TIMEOUT))
            if frame.get("type") in ("ok", "error") and frame.get("id") == request_id:
                return frame
            self.inbox.append(frame)

    async def ok(self, type_: str, **fields: Any) -> dict[str, Any]:
        reply = await self.request(type_, **fields)
        assert reply["type"] == "ok", reply
        return reply["result"]

    async def frame(self, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next frame that is not a watching count."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] != "watching.changed":
                return frame

    async def event(self, type_: str, timeout: float = RECEIVE_TIMEOUT) -> dict[str, Any]:
        """The next frame, skipping watching counts; it must be of `type_`."""
        frame = await self.frame(timeout)
        assert frame["type"] == type_, frame
        return frame

    async def nothing(self, within: float = 0.3) -> None:
        """No frame other than a watching count arrives within `within` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            try:
                frame = await self.recv(remaining)
            except TimeoutError:
                return
            assert frame["type"] == "watching.changed", f"unexpected frame {frame}"

    async def closed(self, timeout: float = RECEIVE_TIMEOUT) -> int | None:
        """Read until the server closes; the close code."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client of the real Redis the multi-process tests share (`DAIS_TEST_REDIS`)."""
    client = Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    await client.aclose()


async def hold_for_a_while(
    database_url: str, postgres: Executable, seconds: float = 1.0
) -> asyncio.Task[None]:
    """Another program holds what the server's next write needs for `seconds`: on SQLite the
    file's write lock (`BEGIN IMMEDIATE`), on PostgreSQL what `postgres` locks in another
    process's transaction. Returns once it is held; the task ends when it lets go."""
    held = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hold_the_file() -> None:
        other = sqlite3.connect(database_url.split("///", 1)[1], isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            loop.call_soon_threadsafe(held.set)
            time.sleep(seconds)
            other.execute("COMMIT")
        finally:
            other.close()

    async def hold_in_postgres() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as other:
                await other.execute(postgres)
                held.set()
                await asyncio.sleep(seconds)
        finally:
            await engine.dispose()

    if database_url.startswith("sqlite"):
        holder = asyncio.create_task(asyncio.to_thread(hold_the_file))
    else:
        holder = asyncio.create_task(hold_in_postgres())
    await held.wait()
    return holder
