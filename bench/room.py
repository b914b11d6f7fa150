"""One busy room on one Dais process: how many room actions per second it acknowledges in time,
whether any is lost, and how big a fresh join is once the room has a long history. Loopback only;
stops by itself.

    .venv/bin/python bench/room.py                          # PostgreSQL, then SQLite
    .venv/bin/python bench/room.py --database sqlite --seconds 8 --sockets 60

For each database it builds a fresh one (a SQLite file in a temporary directory; for PostgreSQL a
database of its own on 127.0.0.1:5432, dropped at the end), migrated with Alembic, holding an
event, one session whose questions need moderation, its chair, three moderators and `--sockets`
attendees with access tokens. The room is seeded first with 5,000 chat messages, 1,000 approved
and 300 pending questions (bulk inserts), so that joins and the writer work against a long
history. Dais then runs under uvicorn in a subprocess (one worker, the memory bus), with the
per-person live rate limits (`DAIS_LIVE_RATE_LIMITS`) and the join throttles lifted so far that
the offered load, not the limiter, is what is measured.

Client processes (bare asyncio websocket protocols on uvloop, as in bench/live.py) hold one socket
per person, every socket reading every broadcast, and offer a mix of room actions at a given total
rate: about 72% `chat.send`, 10% `question.ask` (pending: the session requires moderation), 10%
`question.vote` on approved questions (each person votes for a question once), 8%
`question.approve` of pending questions by the chair and the moderators (staff sockets get
`question.submitted`). Every room action carries a unique idempotency `key`; chat messages and
questions carry it in their text too. Beside them, three `media.watch` a second (at most one per
socket: a viewer pressing play; nobody is live) are *signalling*: their replies are counted and
timed apart, not in the action rate or the ack latency.

Sockets rotate: every second three of them close, half abruptly (the TCP transport aborted, no
close frame) and half with a close frame, and the same person joins again at once (resuming with
`last_seq` after an abrupt close, a fresh join otherwise); actions whose socket died before their
reply are sent again on the new socket with the same key and a fresh request id, as the page does.

Measured, per step of offered rate (50, 100, 200, 300, 400, 550, 700, 1000, 1400, 2000, ...
actions/s, each `--seconds` long, after an unreported warm-up of 3 s at 50/s; stopping after two
steps in a row fail): the acknowledgement latency of each action, from sending its request to the
`ok` or `error` with that id (for an action sent again, the request that was finally answered;
`e2e` is from the first send, through reconnects and busy waits); the answers within the step per
second (acked/s); refusals (`room.busy`, sent again after its `retry_after_ms`, and
`rate_limited`), which are counted, not lost; the server's and the clients' CPU (% of one core: the
server, not the clients, must be the limit), and what other programs took of the machine meanwhile
(on a shared machine they starve the server). A step passes when ack p99 <= 100 ms and at least 95%
of the offered rate was acknowledged within it. The server keeps at most four of a socket's actions
in the room's writer (it reads the socket's next frame once fewer wait): with fewer than 125
sockets, `live_room_queue_actions` (500) is never reached, there is no `room.busy`, and an
overloaded room shows as latency instead. `--rates 400,400` offers those steps instead of the
ladder (a steady rate to profile or compare); `--timeline` adds each step's ack p50/p99 by second;
`--watch-per-s 0` / `--rotate-per-s 0` leave the signalling / the socket rotation out;
`BENCH_LOG_LINES=n` shows the server log's first n lines (40); `BENCH_PROFILE=path` runs the
server's main thread under cProfile (written to path.sqlite or path.postgresql).

After the run the database is checked: every chat message (and question) answered `ok` is stored
exactly once (by the key in its text, and its key in `live_action_keys`), every other `ok` action's
key is stored, and every action got an answer. `lost` = answered ok but not stored + never
answered, even after resends. Then `join_kb`: the size of a fresh attendee join's `ok` frame.

The last line reads `room_actions_per_s=N ack_p99_ms=N lost=N join_kb=N` (SQLite's figures: the
highest passing rate and its ack p99); with both databases the line before it is PostgreSQL's, in
the same form after `postgresql: `.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = os.environ.get("DAIS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
RATES = (50, 100, 200, 300, 400, 550, 700, 1000, 1400, 2000, 2800, 4000, 5600)
WARM_UP = (50.0, 3.0)  # a first step, not reported: (actions/s, seconds)
# The mix of room actions (shares of the offered rate).
MIX = {"chat": 0.72, "ask": 0.10, "vote": 0.10, "approve": 0.08}
P99_LIMIT_MS = 100.0
ACKED_SHARE = 0.95
MODERATORS = 3  # besides the chair: the staff sockets that approve questions
SEED_MESSAGES, SEED_APPROVED, SEED_PENDING = 5000, 1000, 300
SIGNALS_PER_S = 3.0
ROTATIONS_PER_S = 3.0
DRAIN_SECONDS = 20.0  # after a step, how long its unanswered actions are waited for
BUSY_TRIES = 20  # `room.busy` answers after which an action counts as refused
LIFTED = [1_000_000, 1e9]  # a rate limit nobody reaches: (burst, per minute)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def new_key() -> str:
    return secrets.token_urlsafe(12)  # 16 characters of [A-Za-z0-9_-]


# -- the conference ------------------------------------------------------------------------------


async def make_world(database_url: str, attendees: int) -> dict[str, Any]:
    """An event, a session requiring moderation, a chair, moderators and attendees with access
    tokens, and a long history: messages, approved and pending questions (inserted in bulk)."""
    from sqlalchemy import insert

    from app.agenda.models import Session
    from app.auth.models import AccessToken
    from app.auth.service import hash_token
    from app.db import make_engine, make_sessionmaker, new_id, utcnow
    from app.event.models import Event
    from app.people.models import Organiser, Participant, SessionRole
    from chat.models import Message, Question

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
            moderation_required=True,
        )
        db.add(session)
        await db.flush()
        # The attendees, and one more who joins only at the end (join_kb).
        people = [
            Participant(id=new_id(), event_id=event.id, kind="attendee", display_name=f"A{n}")
            for n in range(attendees + 1)
        ]
        staff = [
            Participant(id=new_id(), event_id=event.id, kind="invited", display_name=name)
            for name in ["Chair", *(f"Moderator {n}" for n in range(MODERATORS))]
        ]
        db.add_all([*people, *staff])
        await db.flush()
        db.add_all(
            SessionRole(
                session_id=session.id, participant_id=p.id, role="chair" if i == 0 else "moderator"
            )
            for i, p in enumerate(staff)
        )
        tokens = {p.id: secrets.token_urlsafe(32) for p in [*people, *staff]}
        expires = utcnow() + timedelta(days=1)
        db.add_all(
            AccessToken(token_hash=hash_token(t), participant_id=pid, expires_at=expires)
            for pid, t in tokens.items()
        )
        await db.flush()

        rng = random.Random(7)
        start = utcnow() - timedelta(hours=2)
        words = "the a talk slide data question speaker point why how agree great thanks".split()

        def sentence(n: int) -> str:
            return " ".join(rng.choice(words) for _ in range(n))

        await db.execute(
            insert(Message),
            [
                {
                    "id": new_id(),
                    "session_id": session.id,
                    "author_id": (author := rng.choice(people)).id,
                    "author_name": author.display_name,
                    "author_role": "attendee",
                    "kind": "chat",
                    "text": "seed " + sentence(rng.randint(3, 30)),
                    "status": "visible",
                    "created_at": start + timedelta(seconds=n),
                }
                for n in range(SEED_MESSAGES)
            ],
        )
        questions = [
            {
                "id": new_id(),
                "session_id": session.id,
                "asker_id": (asker := rng.choice(people)).id,
                "asker_name": asker.display_name,
                "anonymous": rng.random() < 0.2,
                "text": "seed " + sentence(rng.randint(8, 40)) + "?",
                "status": "approved" if n < SEED_APPROVED else "pending",
                "answered": False,
                "votes": rng.randint(0, 40) if n < SEED_APPROVED else 0,
                "created_at": start + timedelta(seconds=3 * n),
            }
            for n in range(SEED_APPROVED + SEED_PENDING)
        ]
        await db.execute(insert(Question), questions)
        await db.commit()
    await engine.dispose()
    return {
        "session_id": session.id,
        "attendees": [(tokens[p.id], p.id) for p in people[:-1]],
        "newcomer": (tokens[people[-1].id], people[-1].id),
        "staff": [(tokens[p.id], p.id) for p in staff],
        "approved": [q["id"] for q in questions[:SEED_APPROVED]],
        "pending": [q["id"] for q in questions[SEED_APPROVED:]],
    }


# -- client processes ----------------------------------------------------------------------------
#
# Cheap on purpose, as in bench/live.py: each socket is a bare asyncio protocol on uvloop speaking
# just enough websocket. Replies are told from broadcasts by their first bytes; only errors and a
# few broadcasts (question ids) are parsed.

ZERO_MASK = b"\x00\x00\x00\x00"  # a valid client mask that leaves the payload as it is
OK = b'{"type":"ok","id":'
ERROR = b'{"type":"error"'
SUBMITTED = b'{"type":"question.submitted"'
APPROVED = b'{"type":"question.approved"'
QUESTION_ID = b'"question":{"id":"'
MESSAGE_ID = b'"message":{"id":"'


def client_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + ZERO_MASK + payload


def quoted_after(payload: bytes, marker: bytes) -> str | None:
    at = payload.find(marker)
    if at < 0:
        return None
    start = at + len(marker)
    return payload[start : payload.find(b'"', start)].decode()


@dataclass(slots=True)
class Act:
    """One room action, from its first send to its final answer (resends keep the key)."""

    kind: str
    key: str
    body: dict[str, Any]
    slot: Slot
    step: int
    first_sent: float = 0.0
    sent_at: float = 0.0
    rid: int = 0
    ws: RawSocket | None = None
    busy: int = 0
    resends: int = 0
    status: str = ""  # "", ok, error, refused
    code: str = ""
    message_id: str | None = None


@dataclass(slots=True)
class Slot:
    """A person and their current socket (the page, across reconnects)."""

    token: str
    person_id: str
    staff: bool
    ws: RawSocket | None = None
    waiting: list[Act] = field(default_factory=list)
    last_seq: int | None = None
    resume: bool = False
    voted: set[str] = field(default_factory=set)


@dataclass
class Tally:
    """One step's figures in one client process."""

    offered: int = 0
    skipped: int = 0  # approvals due with no pending question known
    answered_in_window: int = 0
    ack: list[float] = field(default_factory=list)
    e2e: list[float] = field(default_factory=list)
    # (seconds into the step when sent, ack latency): for --timeline
    timeline: list[tuple[float, float]] = field(default_factory=list)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    busy: int = 0
    rate_limited: int = 0
    refused: int = 0
    resent: int = 0
    unanswered: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    signal_ms: list[float] = field(default_factory=list)
    deliveries: int = 0
    joins: Counter[str] = field(default_factory=Counter)
    closes: Counter[str] = field(default_factory=Counter)


class RawSocket(asyncio.Protocol):
    def __init__(self, client: Client, slot: Slot, request: bytes, join: bytes) -> None:
        self.client, self.slot, self.request, self.join = client, slot, request, join
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.ready = False  # joined: actions may go
        self.watched = False
        self.state = ""  # how it ended: abort, close code, or 1006
        self.inflight: dict[int, Act] = {}
        self.signals: dict[int, float] = {}

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.state = "upgrade:" + buffer[:12].decode(errors="replace")
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
            if payload.startswith(OK):
                if payload[18:19] == b'"':  # the join's id is a string, the actions' numbers
                    self.client.joined(self, payload)
                else:
                    self.client.ok(self, int(payload[18 : payload.find(b",", 18)]), payload)
            elif payload.startswith(ERROR):
                self.client.error(self, json.loads(payload))
            else:
                self.client.broadcast(self, payload)
        elif opcode == 9:
            self.transport.write(client_frame(10, payload))  # type: ignore[union-attr]
        elif opcode == 8:
            if not self.state:
                self.state = (
                    str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "1005"
                )
                self.transport.write(client_frame(8, payload[:2]))  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]


class Client:
    """One client process: its people's sockets, the load it offers, and its tallies."""

    def __init__(
        self, index: int, processes: int, url: str, origin: str, work: dict[str, Any]
    ) -> None:
        self.index, self.processes = index, processes
        hostport, path = url.removeprefix("ws://").split("/", 1)
        host, port = hostport.split(":")
        self.host, self.port, self.hostport, self.path = host, int(port), hostport, path
        self.origin = origin
        self.slots = [Slot(t, p, False) for t, p in work["attendees"]]
        self.slots += [Slot(t, p, True) for t, p in work["staff"]]
        self.attendees = [s for s in self.slots if not s.staff]
        self.staff = [s for s in self.slots if s.staff]
        self.approved = list(work["approved"])
        self.approved_seen = set(self.approved)
        self.pending: deque[str] = deque(work["pending"])
        self.pending_seen = set(self.pending)
        self.inflight: dict[int, Act] = {}
        self.acts: list[Act] = []
        self.next_id = 1
        self.tally = Tally()
        self.tallies: list[Tally] = []
        self.window = False
        self.loop = asyncio.get_running_loop()
        self.gate = asyncio.Semaphore(20)
        self.stopping = False
        self.step_start = 0.0
        self.signals_per_s = work["signals_per_s"]
        self.rotations_per_s = work["rotations_per_s"]

    # -- sockets --

    def connect(self, slot: Slot, delay: float = 0.0) -> None:
        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            key = base64.b64encode(secrets.token_bytes(16)).decode()
            request = (
                f"GET /{self.path} HTTP/1.1\r\nHost: {self.hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {self.origin}\r\n\r\n"
            ).encode()
            join: dict[str, Any] = {"id": "join", "type": "room.join", "token": slot.token}
            if slot.resume and slot.last_seq is not None:
                join["last_seq"] = slot.last_seq
            frame = client_frame(1, json.dumps(join).encode())
            async with self.gate:
                try:
                    _, ws = await self.loop.create_connection(
                        lambda: RawSocket(self, slot, request, frame), self.host, self.port
                    )
                except OSError:
                    self.tally.joins["connect failed"] += 1
                    self.connect(slot, 0.5)
                    return
            slot.ws = ws

        self.loop.create_task(run())

    def joined(self, ws: RawSocket, payload: bytes) -> None:
        slot = ws.slot
        start = payload.find(b'"seq":') + 6
        seq = int(payload[start : payload.find(b",", start)])
        resumed = payload.find(b'"resumed":true', 0, 200) >= 0
        slot.last_seq = max(seq, slot.last_seq or 0) if resumed else seq
        self.tally.joins["resumed" if resumed else "fresh"] += 1
        ws.ready = True
        waiting, slot.waiting = slot.waiting, []
        for act in sorted(waiting, key=lambda a: a.first_sent or float("inf")):
            self.send(act)

    def lost(self, ws: RawSocket) -> None:
        slot = ws.slot
        self.tally.closes[ws.state or "1006"] += 1
        for rid, act in sorted(ws.inflight.items()):
            self.inflight.pop(rid, None)
            act.resends += 1
            self.tally.resent += 1
            slot.waiting.append(act)
        ws.inflight.clear()
        for _ in ws.signals:
            self.tally.signals["cut by close"] += 1
        if slot.ws is ws:
            slot.ws = None
            if not self.stopping:
                expected = ws.state in ("abort", "1000")
                if not expected:
                    slot.resume = True  # the page reconnects with last_seq after anything but 1008
                if not ws.ready:
                    self.tally.joins[f"failed ({ws.state or '1006'})"] += 1
                self.connect(slot, 0.0 if expected and ws.ready else 0.5)

    def rotate(self, slot: Slot, abrupt: bool) -> None:
        ws = slot.ws
        if ws is None or not ws.ready or ws.transport is None:
            return
        slot.resume = abrupt
        if abrupt:
            ws.state = "abort"
            ws.transport.abort()
        else:
            ws.state = "1000"
            ws.transport.write(client_frame(8, (1000).to_bytes(2, "big")))

    # -- actions --

    def send(self, act: Act) -> None:
        ws = act.slot.ws
        if ws is None or not ws.ready or ws.state:
            act.slot.waiting.append(act)
            return
        rid = self.next_id
        self.next_id += 1
        now = time.perf_counter()
        act.rid, act.sent_at, act.ws = rid, now, ws
        if not act.first_sent:
            act.first_sent = now
        self.inflight[rid] = act
        ws.inflight[rid] = act
        ws.transport.write(client_frame(1, json.dumps({"id": rid, **act.body}).encode()))  # type: ignore[union-attr]

    def finish(self, act: Act, status: str, code: str = "") -> None:
        now = time.perf_counter()
        act.status, act.code = status, code
        tally = self.tallies[act.step]
        if status == "refused":
            tally.refused += 1
        else:
            tally.ack.append(now - act.sent_at)
            tally.timeline.append((act.sent_at - self.step_start, now - act.sent_at))
            tally.e2e.append(now - act.first_sent)
            if status == "ok":
                tally.ok += 1
            else:
                tally.errors[code] += 1
        if self.window and act.step == len(self.tallies) - 1:
            tally.answered_in_window += 1

    def ok(self, ws: RawSocket, rid: int, payload: bytes) -> None:
        sent = ws.signals.pop(rid, None)
        if sent is not None:
            self.tally.signals["ok"] += 1
            self.tally.signal_ms.append(time.perf_counter() - sent)
            return
        act = self.inflight.pop(rid, None)
        if act is None:
            self.tally.errors["reply to an unknown id"] += 1
            return
        ws.inflight.pop(rid, None)
        if act.kind == "chat":
            act.message_id = quoted_after(payload, MESSAGE_ID)
        self.finish(act, "ok")

    def error(self, ws: RawSocket, reply: dict[str, Any]) -> None:
        rid, code = reply.get("id"), str(reply.get("code"))
        if rid == "join":
            ws.state = f"join refused: {code}"
            return
        if not isinstance(rid, int):
            self.tally.errors[f"error to id {rid!r}: {code}"] += 1
            return
        sent = ws.signals.pop(rid, None)
        if sent is not None:
            self.tally.signals[code] += 1
            self.tally.signal_ms.append(time.perf_counter() - sent)
            return
        act = self.inflight.pop(rid, None)
        if act is None:
            self.tally.errors[f"error to an unknown id: {code}"] += 1
            return
        ws.inflight.pop(rid, None)
        tally = self.tallies[act.step]
        if code == "room.busy":
            tally.busy += 1
            act.busy += 1
            if act.busy >= BUSY_TRIES:
                self.finish(act, "refused", code)
            else:
                wait = (reply.get("retry_after_ms") or 250) / 1000
                self.loop.call_later(wait, self.send, act)
        elif code == "rate_limited":
            tally.rate_limited += 1
            self.finish(act, "refused", code)
        else:
            self.finish(act, "error", code)

    def broadcast(self, ws: RawSocket, payload: bytes) -> None:
        self.tally.deliveries += 1
        at = payload.find(b'"seq":', 10, 60)
        if at >= 0 and payload[at + 6 : at + 7].isdigit():
            seq = int(payload[at + 6 : payload.find(b",", at)])
            slot = ws.slot
            if slot.last_seq is None or seq > slot.last_seq:
                slot.last_seq = seq
        if payload.startswith(SUBMITTED):
            qid = quoted_after(payload, QUESTION_ID)
            if qid and qid not in self.pending_seen:
                self.pending_seen.add(qid)
                self.pending.append(qid)
        elif payload.startswith(APPROVED):
            qid = quoted_after(payload, QUESTION_ID)
            if qid and qid not in self.approved_seen:
                self.approved_seen.add(qid)
                self.approved.append(qid)

    def make(self, kind: str, slot: Slot) -> Act | None:
        key = new_key()
        filler = "x" * random.randint(10, 120)
        if kind == "chat":
            body = {"type": "chat.send", "key": key, "text": f"bench {key} {filler}"}
        elif kind == "ask":
            body = {"type": "question.ask", "key": key, "text": f"bench {key} why {filler}?"}
        elif kind == "vote":
            for _ in range(8):
                qid = random.choice(self.approved)
                if qid not in slot.voted:
                    break
            else:
                return self.make("chat", slot)
            slot.voted.add(qid)
            body = {"type": "question.vote", "key": key, "question_id": qid}
        else:
            if not self.pending:
                return None
            body = {"type": "question.approve", "key": key, "question_id": self.pending.popleft()}
        return Act(kind, key, body, slot, len(self.tallies) - 1)

    def watch(self) -> bool:
        """One viewer presses play: `media.watch` on a socket that has not watched yet."""
        for _ in range(10):
            ws = random.choice(self.attendees).ws
            if ws is not None and ws.ready and not ws.watched and not ws.state:
                ws.watched = True
                rid = self.next_id
                self.next_id += 1
                ws.signals[rid] = time.perf_counter()
                ws.transport.write(  # type: ignore[union-attr]
                    client_frame(1, json.dumps({"id": rid, "type": "media.watch"}).encode())
                )
                self.tally.signals["sent"] += 1
                return True
        self.tally.signals["no socket left to watch"] += 1
        return False

    async def step(self, rate: float, seconds: float) -> dict[str, Any]:
        # What earlier steps left (every action's record, for the final check) is kept out of
        # this step's collections: a client's full collection walking it would delay reading
        # replies, and show as the server's latency, longer with every step.
        gc.collect()
        gc.freeze()
        self.tally = Tally()
        self.tallies.append(self.tally)
        kinds = [k for k in MIX if k != "approve"]
        weights = [MIX[k] for k in kinds]
        attendee_rate = rate * (1 - MIX["approve"]) / self.processes
        approve_rate = rate * MIX["approve"] if self.staff else 0.0
        per = self.processes
        counts = {"attendee": 0, "approve": 0, "signal": 0, "rotate": 0}
        goals = {
            "attendee": attendee_rate,
            "approve": approve_rate,
            "signal": self.signals_per_s / per,
            "rotate": self.rotations_per_s / per,
        }
        step_acts: list[Act] = []
        start = self.step_start = time.perf_counter()
        self.window = True
        while (elapsed := time.perf_counter() - start) < seconds:
            for name, goal in goals.items():
                due = int(elapsed * goal) - counts[name]
                for _ in range(due):
                    counts[name] += 1
                    if name == "signal":
                        self.watch()
                    elif name == "rotate":
                        self.rotate(random.choice(self.slots), abrupt=counts[name] % 2 == 1)
                    else:
                        staff = name == "approve"
                        slot = random.choice(self.staff if staff else self.attendees)
                        kind = "approve" if staff else random.choices(kinds, weights)[0]
                        act = self.make(kind, slot)
                        if act is None:
                            self.tally.skipped += 1
                            continue
                        self.tally.offered += 1
                        step_acts.append(act)
                        self.send(act)
            await asyncio.sleep(0.002)
        window = time.perf_counter() - start
        self.window = False
        self.acts += step_acts
        deadline = time.perf_counter() + DRAIN_SECONDS
        while any(not a.status for a in step_acts) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        t = self.tally
        t.unanswered = sum(1 for a in step_acts if not a.status)
        return {
            "window": window,
            "offered": t.offered,
            "skipped": t.skipped,
            "answered_in_window": t.answered_in_window,
            "ack": t.ack,
            "timeline": t.timeline,
            "e2e": t.e2e,
            "ok": t.ok,
            "errors": dict(t.errors),
            "busy": t.busy,
            "rate_limited": t.rate_limited,
            "refused": t.refused,
            "resent": t.resent,
            "unanswered": t.unanswered,
            "signals": dict(t.signals),
            "signal_ms": t.signal_ms,
            "deliveries": t.deliveries,
            "joins": dict(t.joins),
            "closes": dict(t.closes),
        }

    async def final(self) -> dict[str, Any]:
        """Wait for what is still unanswered, then everything needed to check the database."""
        deadline = time.perf_counter() + DRAIN_SECONDS
        while any(not a.status for a in self.acts) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        self.stopping = True
        answered = [
            (a.slot.person_id, a.key, a.kind, a.status, a.code, a.message_id, a.resends)
            for a in self.acts
        ]
        for slot in self.slots:
            if slot.ws is not None and slot.ws.transport is not None and not slot.ws.state:
                slot.ws.state = "1000"
                slot.ws.transport.write(client_frame(8, (1000).to_bytes(2, "big")))
        await asyncio.sleep(1.0)
        return {"actions": answered, "closes": dict(self.tally.closes)}


def client_process(
    index: int,
    processes: int,
    url: str,
    origin: str,
    work: dict[str, Any],
    control: Any,
    results: Any,
) -> None:
    import uvloop

    raise_fd_limit()
    uvloop.run(_client(index, processes, url, origin, work, control, results))


async def _client(
    index: int,
    processes: int,
    url: str,
    origin: str,
    work: dict[str, Any],
    control: Any,
    results: Any,
) -> None:
    client = Client(index, processes, url, origin, work)
    client.tallies.append(client.tally)  # joins before the first step
    for slot in client.slots:
        client.connect(slot)
    deadline = time.perf_counter() + 120
    while any(s.ws is None or not s.ws.ready for s in client.slots):
        if time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.05)
    results.put(("connected", sum(1 for s in client.slots if s.ws and s.ws.ready)))
    while True:
        command = await client.loop.run_in_executor(None, control.get)
        if command[0] == "step":
            results.put(("step", await client.step(command[1], command[2])))
        elif command[0] == "final":
            results.put(("final", await client.final()))
            return


# -- the driver ----------------------------------------------------------------------------------


async def _pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


async def measure_join(url: str, origin: str, token: str) -> int:
    """Bytes of a fresh join's `ok` frame."""
    import websockets

    async with websockets.connect(url, origin=origin, compression=None, max_size=None) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"id": "join", "type": "room.join", "token": token}))
        while True:
            frame = await asyncio.wait_for(ws.recv(), 30)
            text = frame if isinstance(frame, str) else frame.decode()
            if text.startswith('{"type":"ok","id":"join"') or text.startswith('{"type":"error"'):
                assert text.startswith('{"type":"ok"'), text[:300]
                return len(text.encode())


async def check_database(
    database_url: str, session_id: str, actions: list[tuple[Any, ...]]
) -> dict[str, Any]:
    """Hold every answered action against what the database stored."""
    from sqlalchemy import text

    from app.db import make_engine

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            keys = {
                (p, k)
                for p, k in await conn.execute(
                    text("SELECT person_id, key FROM live_action_keys WHERE session_id = :s"),
                    {"s": session_id},
                )
            }
            stored: dict[str, Counter[str]] = {"chat": Counter(), "ask": Counter()}
            message_ids: dict[str, str] = {}
            for table, kind in (("live_messages", "chat"), ("live_questions", "ask")):
                rows = await conn.execute(
                    text(
                        f"SELECT id, text FROM {table} WHERE session_id = :s AND text LIKE 'bench %'"
                    ),  # noqa: S608
                    {"s": session_id},
                )
                for row_id, body in rows:
                    key = body.split(" ", 2)[1]
                    stored[kind][key] += 1
                    if kind == "chat":
                        message_ids[key] = row_id
    finally:
        await engine.dispose()
    report: Counter[str] = Counter()
    examples: dict[str, list[tuple[Any, ...]]] = {}

    def note(what: str, action: tuple[Any, ...]) -> None:
        report[what] += 1
        examples.setdefault(what, [])
        if len(examples[what]) < 3:
            examples[what].append(action)

    lost = 0
    for action in actions:
        person_id, key, kind, status, code, message_id, resends = action
        if resends:
            note("sent again after a socket closed", action)
        if status == "ok":
            note(f"ok {kind}", action)
            missing = (person_id, key) not in keys
            if missing:
                note("ok but key not stored", action)
            if kind in stored:
                count = stored[kind][key]
                if count == 0:
                    missing = True
                    note(f"ok {kind} not stored", action)
                elif count > 1:
                    note(f"ok {kind} stored {count} times", action)
            if kind == "chat" and message_id != message_ids.get(key):
                note("ok chat with another message id than stored", action)
            lost += missing
        elif not status:
            lost += 1
            note("never answered", action)
            if (person_id, key) in keys:
                note("never answered, yet applied", action)
        elif status == "error" and (person_id, key) in keys:
            note("answered error, yet its key stored", action)
    return {"report": report, "examples": examples, "lost": lost}


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """One database: build, serve, step the load up, check. Returns the headline figures."""
    from app.migrate import upgrade

    tag = f"[{kind}]"
    workdir = Path(tempfile.mkdtemp(prefix="dais-bench-room-"))
    pg_name = f"dais_bench_room_{os.getpid()}_{secrets.token_hex(3)}"
    if kind == "sqlite":
        database_url = f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    else:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{pg_name}"'))
        database_url = f"{PG_SERVER}/{pg_name}"
    server = None
    processes: list[Any] = []
    log_path = workdir / "server.log"
    try:
        upgrade(database_url)
        started = time.monotonic()
        world = asyncio.run(make_world(database_url, args.sockets))
        print(
            f"{tag} world: {args.sockets} attendees, chair and {MODERATORS} moderators; seeded "
            f"{SEED_MESSAGES} messages, {SEED_APPROVED} approved and {SEED_PENDING} pending "
            f"questions in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        url = f"ws://127.0.0.1:{port}/api/sessions/{world['session_id']}/live"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAIS_")} | {
            "DAIS_DATABASE_URL": database_url,
            "DAIS_DATA_DIR": str(workdir),
            "DAIS_BASE_URL": origin,
            "DAIS_SECRET_KEY": "bench",
            "DAIS_BUS_URL": "memory://",
            # Lifted: the offered load, not the per-person limiter, is measured.
            "DAIS_LIVE_RATE_LIMITS": json.dumps(
                {k: LIFTED for k in ("chat", "question", "vote", "reaction", "signal", "history")}
            ),
            # Everyone joins (and rejoins) from this one address, with one token each.
            "DAIS_THROTTLES": json.dumps({"join-client": LIFTED, "join-sign-in": LIFTED}),
        }
        # BENCH_PROFILE=path: the server's main thread under cProfile, written there on exit.
        profile = os.environ.get("BENCH_PROFILE")
        prefix = (
            "import cProfile, signal, sys; p = cProfile.Profile(); p.enable(); "
            "signal.signal(signal.SIGTERM, lambda *a: (p.disable(), "
            f"p.dump_stats({profile + '.' + kind!r}), sys.exit(0))); "
            if profile
            else ""
        )
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    prefix
                    + "import resource, uvicorn; h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
                    "resource.setrlimit(resource.RLIMIT_NOFILE, (h, h)); "
                    f"uvicorn.run('app.main:create_app', factory=True, host='127.0.0.1', port={port}, "
                    "ws='websockets-sansio', ws_per_message_deflate=False, backlog=4096, "
                    "log_level='warning', access_log=False)",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(
                        f"{tag} the server did not start:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.2)

        context = mp.get_context("spawn")
        results = context.Queue()
        controls = []
        attendees = world["attendees"]
        for i in range(args.clients):
            work = {
                "attendees": attendees[i :: args.clients],
                "staff": world["staff"] if i == 0 else [],
                "approved": world["approved"],
                "pending": world["pending"] if i == 0 else [],
                "signals_per_s": args.watch_per_s,
                "rotations_per_s": args.rotate_per_s,
            }
            control = context.Queue()
            process = context.Process(
                target=client_process,
                args=(i, args.clients, url, origin, work, control, results),
            )
            process.start()
            processes.append(process)
            controls.append(control)
        started = time.monotonic()
        connected = sum(results.get(timeout=300)[1] for _ in processes)
        print(
            f"{tag} {connected} sockets joined in {time.monotonic() - started:.1f} s "
            f"({args.clients} client processes)",
            flush=True,
        )

        def clients_cpu() -> float:
            return sum(cpu_seconds(p.pid) for p in processes)

        for control in controls:
            control.put(("step", *WARM_UP))
        for _ in processes:
            results.get(timeout=WARM_UP[1] + DRAIN_SECONDS + 60)
        steps: list[dict[str, Any]] = []
        failures = 0
        rates = args.rates or [r for r in RATES if r <= args.max_rate]
        for rate in rates:
            cpu0, client0, t0 = cpu_seconds(server.pid), clients_cpu(), time.monotonic()
            busy0, total0 = machine_busy()
            for control in controls:
                control.put(("step", float(rate), args.seconds))
            time.sleep(args.seconds)
            server_cpu = cpu_seconds(server.pid) - cpu0
            client_cpu = clients_cpu() - client0
            wall = time.monotonic() - t0
            busy1, total1 = machine_busy()
            parts = [results.get(timeout=args.seconds + DRAIN_SECONDS + 60)[1] for _ in processes]
            step = merge(parts)
            step.update(rate=rate, server_cpu=server_cpu / wall, client_cpu=client_cpu / wall)
            # Everything else on the machine (other programs), as a share of all its cores.
            step["others_cpu"] = max(
                0.0, ((busy1 - busy0) - server_cpu - client_cpu) / max(total1 - total0, 1e-9)
            )
            step["p50"] = percentile(step["ack"], 50) * 1000
            step["p99"] = percentile(step["ack"], 99) * 1000
            step["e2e_p99"] = percentile(step["e2e"], 99) * 1000
            step["acked_per_s"] = step["answered_in_window"] / step["window"]
            step["passed"] = (
                step["p99"] <= P99_LIMIT_MS and step["acked_per_s"] >= ACKED_SHARE * rate
            )
            steps.append(step)
            print(f"{tag} {step_line(step)}", flush=True)
            if args.timeline:
                print(f"{tag}   {timeline(step['timeline'])}", flush=True)
            failures = 0 if step["passed"] else failures + 1
            if failures >= 2 and not args.rates:
                break

        for control in controls:
            control.put(("final",))
        finals = [results.get(timeout=DRAIN_SECONDS + 60)[1] for _ in processes]
        actions = [a for f in finals for a in f["actions"]]
        closes = sum((Counter(f["closes"]) for f in finals), Counter())
        print(f"{tag} sockets closed at the end (by state): {dict(closes)}", flush=True)

        join_bytes = asyncio.run(measure_join(url, origin, world["newcomer"][0]))
        chair_bytes = asyncio.run(measure_join(url, origin, world["staff"][0][0]))
        checked = asyncio.run(check_database(database_url, world["session_id"], actions))
        report = checked["report"]
        print(f"{tag} database check: {dict(sorted(report.items()))}", flush=True)
        for what, examples in checked["examples"].items():
            if "not stored" in what or "never" in what or "times" in what or "yet" in what:
                print(f"{tag}   e.g. {what}: {examples}", flush=True)
        print(
            f"{tag} fresh join reply: attendee {join_bytes / 1024:.1f} KB, chair "
            f"{chair_bytes / 1024:.1f} KB",
            flush=True,
        )
        passed = [s for s in steps if s["passed"]]
        best = passed[-1] if passed else None
        return {
            "rate": best["rate"] if best else 0,
            "p99": (best or steps[0])["p99"],
            "lost": checked["lost"],
            "join_kb": join_bytes / 1024,
        }
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if log_path.exists():
            lines = log_path.read_text(errors="replace").splitlines()
            print(f"{tag} server log: {len(lines)} lines", flush=True)
            for line in lines[: int(os.environ.get("BENCH_LOG_LINES", "40"))]:
                print(f"{tag}   | {line}", flush=True)
        if kind == "postgresql":
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        shutil.rmtree(workdir, ignore_errors=True)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"window": max(p["window"] for p in parts)}
    for name in parts[0]:
        if name == "window":
            continue
        values = [p[name] for p in parts]
        if isinstance(values[0], dict):
            merged[name] = dict(sum((Counter(v) for v in values), Counter()))
        elif isinstance(values[0], list):
            merged[name] = [x for v in values for x in v]
        else:
            merged[name] = sum(values)
    return merged


def step_line(s: dict[str, Any]) -> str:
    signals = s["signals"]
    watch = percentile(s["signal_ms"], 99) * 1000
    answers = {k: v for k, v in signals.items() if k not in ("sent", "no socket left to watch")}
    return (
        f"offered {s['rate']}/s (sent {s['offered'] / s['window']:.0f}/s"
        + (f", {s['skipped']} approvals skipped" if s["skipped"] else "")
        + f") acked {s['acked_per_s']:.0f}/s refused {s['refused']} (busy answers {s['busy']}, "
        f"rate_limited {s['rate_limited']}) p50 {s['p50']:.1f} ms p99 {s['p99']:.1f} ms "
        f"e2e_p99 {s['e2e_p99']:.1f} ms | errors {s['errors'] or 0} unanswered {s['unanswered']} "
        f"resent {s['resent']} | media.watch {signals.get('sent', 0)} sent, answers {answers or 0}, "
        f"p99 {watch:.0f} ms | joins {s['joins']} closes {s['closes']} | deliveries "
        f"{s['deliveries'] / s['window']:.0f}/s | server cpu {s['server_cpu']:.0%} client cpu "
        f"{s['client_cpu']:.0%} (of one core; other programs {s['others_cpu']:.0%} of the machine) | "
        f"{'pass' if s['passed'] else 'FAIL'}"
    )


def timeline(points: list[tuple[float, float]]) -> str:
    """Ack latency p50/p99 (ms) of the actions sent in each second of a step."""
    seconds: dict[int, list[float]] = {}
    for at, latency in points:
        seconds.setdefault(int(at), []).append(latency)
    return "by second sent: " + ", ".join(
        f"{t}s {percentile(v, 50) * 1000:.0f}/{percentile(v, 99) * 1000:.0f}"
        for t, v in sorted(seconds.items())
    )


def headline(figures: dict[str, Any]) -> str:
    return (
        f"room_actions_per_s={figures['rate']} ack_p99_ms={figures['p99']:.0f} "
        f"lost={figures['lost']} join_kb={figures['join_kb']:.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each step")
    parser.add_argument("--sockets", type=int, default=60, help="attendee sockets")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--watch-per-s", type=float, default=SIGNALS_PER_S, help="media.watch")
    parser.add_argument("--rotate-per-s", type=float, default=ROTATIONS_PER_S, help="socket closes")
    parser.add_argument(
        "--timeline", action="store_true", help="ack p50/p99 for each second of each step"
    )
    parser.add_argument("--max-rate", type=int, default=RATES[-1], help="highest step offered")
    parser.add_argument(
        "--rates",
        type=lambda text: [int(r) for r in text.split(",")],
        help="offer these steps instead (e.g. 400,400,400: a steady rate to profile or compare)",
    )
    args = parser.parse_args()
    raise_fd_limit()
    kinds = ["postgresql", "sqlite"] if args.database == "both" else [args.database]
    figures = {kind: run(kind, args) for kind in kinds}
    if args.database == "both":
        print(f"postgresql: {headline(figures['postgresql'])}")
    print(headline(figures[kinds[-1]]))


if __name__ == "__main__":
    main()
