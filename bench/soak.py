"""Soak of one Dais process: a busy conference room for half an hour, loopback only.

    .venv/bin/python bench/soak.py --minutes 30
    .venv/bin/python bench/soak.py --minutes 3 --report-every 1
    .venv/bin/python bench/soak.py --database postgresql   # a fresh database on 127.0.0.1:5432

Dais runs as `dais serve` runs it (uvicorn, one process, pings every 20 s) in a subprocess, on a
fresh SQLite file (or a fresh PostgreSQL database, trust auth, dropped at the end). The room:

* a speaker publishes camera video (pre-encoded VP8, 320x240 at 15 fps) and microphone audio
  (Opus) with aiortc for the whole run, put live by the chair with `stage.go_live` (a process of
  its own);
* about 20 viewers join and leave every few seconds: live socket, `room.join`, `media.watch`,
  `media.answer` (and answers to `media.offered`), RTP counted at the socket without decryption
  for 4-12 s, then leave; every third leaves abruptly (the TCP transport aborted, the peer
  connection dropped without a word: no close frame, no DTLS close_notify, no RTCP BYE). They run
  in a process of their own;
* 50 attendees chat at 20 messages/s in total and ask 1 question/s; the session requires
  moderation and the chair approves every question. Every action carries an idempotency `key`;
  `room.busy` answers are resent after `retry_after_ms` with the same key; a socket that dies is
  reconnected and its unanswered actions resent (as the page does). Each message carries its key
  and send time, so a reader socket measures the chat delay (send -> `message.posted` seen) and
  each sender the acknowledgement delay (send -> `ok`).

At `--switch-at` of the run (default midway) the chair ends the session (`session.end`), and the
event's second session starts: its chair puts the speaker (publishing again) live, and viewers and
chatters move to it. At the end the second chair ends that session too, everyone leaves, and the
server is measured idle again.

Every `--report-every` minutes a row: server RSS, open fds, UDP sockets, viewers connected (client
side) and people in the room (`watching.changed`), chat delay p50/p99 and ack p99 over the window,
messages sent/acked/stored so far, server CPU over the window; then, to tell a slow server from a
busy machine, the round trip of websocket pings sent five times a second on the reader's socket
(uvicorn answers them from its event loop, no database involved: `loop_p99`, `loop_max`), the
slowest 4 KiB write+fsync next to the database (once a second: what a commit waits for with
synchronous=FULL), viewer visits ended in the window and how many got video, `room.busy` answers
so far, and the clients' CPU (they share the machine). At the end: the table again, the idle
counts before and after (fds by kind and open files, UDP, threads, RSS), the database check
(every acknowledged chat message stored exactly once; `lost` = sent and never acknowledged), the
reader's broadcasts, episodes of acknowledgements over 1 s, the viewers' media, and the server's
log (ERROR/Traceback lines, warnings, and bare lines). The last line reads

    soak_minutes=N rss_growth_mb=N fd_growth=N udp_growth=N chat_p99_ms=N lost=N errors=N

(growth = idle at the end minus idle at the start, the start measured after a warm-up: ten people
join at once, chat and leave, so the database pool and imports are not counted as growth).

A new viewer's first video packet comes up to a second after its answer: the speaker's video is
pre-encoded with a keyframe every second and cannot answer the server's keyframe requests.

Harness choices, not Dais behaviour: every process (the server included, patched at its start in
this file's bootstrap) gathers ICE host candidates on 127.0.0.1 only (aioice skips loopback by
default); clients use no STUN server. The per-client join throttle is lifted (everyone connects
from 127.0.0.1) and the chat/question rate limits are raised above what one attendee sends here,
so that refusals are not what is measured. Ctrl-C stops everything and cleans up.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fractions
import json
import multiprocessing as mp
import os
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
TEXT_MARK = b"soak k="
FILLER = "chatting along with the talk, " * 2


# -- process hygiene -----------------------------------------------------------------------------


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to signal this process when its parent dies (Linux), so nothing outlives a
    killed soak."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG


def loopback_ice() -> None:
    """ICE host candidates on 127.0.0.1 only, in this process (aioice leaves loopback out)."""
    import aioice.ice

    def loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def non_loopback_candidates(sdp: str) -> int:
    """ICE candidates in an SDP that are not on 127.0.0.1 / ::1."""
    count = 0
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) > 4 and parts[4] not in ("127.0.0.1", "::1"):
                count += 1
    return count


# -- a live socket on a bare asyncio protocol ----------------------------------------------------
#
# Cheap on purpose: the clients share two cores with the server. Enough websocket for the live
# protocol (handshake, masked text frames, fragments, ping/pong, close) and the request/reply
# pairing by `id`; pushed events are handed over by type without parsing the JSON.


def client_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload  # a zero mask leaves the payload as it is


class Refused(Exception):
    """An `error` reply where an `ok` was needed."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code')}: {reply.get('message')}")
        self.code = str(reply.get("code"))


class LiveSocket(asyncio.Protocol):
    def __init__(self, request: bytes, on_event: Any) -> None:
        loop = asyncio.get_running_loop()
        self.request_bytes = request
        self.on_event = on_event  # (type: bytes, payload: bytes) -> None
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.fragments: list[bytes] | None = None
        self.upgraded: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.close_sent = False
        self.on_pong: Any = None  # (round trip in s) -> None

    @classmethod
    async def open(
        cls, port: int, session_id: str, on_event: Any = None, timeout: float = 20.0
    ) -> LiveSocket:
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        request = (
            f"GET /api/sessions/{session_id}/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        _, sock = await asyncio.wait_for(
            loop.create_connection(lambda: cls(request, on_event), "127.0.0.1", port), timeout
        )
        try:
            await asyncio.wait_for(asyncio.shield(sock.upgraded), timeout)
        except BaseException:
            sock.abort()
            raise
        return sock

    async def join(self, token: str, timeout: float = 60.0) -> dict[str, Any]:
        reply = await self.request("room.join", timeout=timeout, token=token)
        return reply

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self.request_bytes)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("lost before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(1006)
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("socket closed"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(
                    ConnectionError(buffer[: buffer.find(b"\r\n")].decode(errors="replace"))
                )
                self.abort()
                return
            self.upgraded.set_result(None)
            buffer = buffer[end + 4 :]
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
            first = buffer[pos]
            self.frame(first & 0x80, first & 0x0F, buffer[pos + header : pos + header + size])
            pos += header + size
        self.buffer = buffer[pos:] if pos < n else b""

    def frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (1, 0):
            if not fin:
                self.fragments = (self.fragments or []) + [payload]
                return
            if self.fragments is not None:
                payload, self.fragments = b"".join([*self.fragments, payload]), None
            self.text(payload)
        elif opcode == 9:
            self.write(client_frame(10, payload))
        elif opcode == 10 and self.on_pong is not None and len(payload) == 8:
            self.on_pong(time.perf_counter() - struct.unpack("!d", payload)[0])
        elif opcode == 8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closed.done():
                self.closed.set_result(code)
            if not self.close_sent:
                self.close_sent = True
                self.write(client_frame(8, payload[:2]))
            if self.transport is not None:
                self.transport.close()

    def text(self, payload: bytes) -> None:
        if payload.startswith(b'{"type":"ok"') or payload.startswith(b'{"type":"error"'):
            reply = json.loads(payload)
            future = self.waiting.pop(reply.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(reply)
            return
        if self.on_event is not None and payload.startswith(b'{"type":"'):
            self.on_event(payload[9 : payload.find(b'"', 9)], payload)

    # sending

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    @property
    def open_(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and not self.closed.done()
        )

    def ping(self) -> None:
        """A websocket ping: the server's protocol answers it as soon as its event loop reads
        it, so the round trip shows how long the loop keeps a socket waiting."""
        self.write(client_frame(9, struct.pack("!d", time.perf_counter())))

    def send_action(self, type_: str, **fields: Any) -> asyncio.Future[dict[str, Any]]:
        """Send one action; the future gets its reply (ConnectionError if the socket goes)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if not self.open_:
            future.set_exception(ConnectionError("socket closed"))
            return future
        self.next_id += 1
        self.waiting[self.next_id] = future
        frame = {"id": self.next_id, "type": type_, **fields}
        self.write(client_frame(1, json.dumps(frame, separators=(",", ":")).encode()))
        return future

    async def request(self, type_: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        """An action whose `ok` result is needed: Refused on an error reply."""
        reply = await asyncio.wait_for(self.send_action(type_, **fields), timeout)
        if reply["type"] != "ok":
            raise Refused(reply)
        return reply.get("result") or {}

    async def close(self, code: int = 1000, timeout: float = 3.0) -> None:
        if self.open_ and not self.close_sent:
            self.close_sent = True
            self.write(client_frame(8, code.to_bytes(2, "big")))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Gone without a close frame: the TCP connection is dropped."""
        if self.transport is not None:
            self.transport.abort()


# -- the conference ------------------------------------------------------------------------------


async def make_world(database_url: str, chatters: int, viewers: int) -> dict[str, Any]:
    """An event with two sessions (moderated Q&A), a chair for each, one speaker in both,
    chatters, a reader and a pool of viewers, each with an access token."""
    from app.agenda.models import Session
    from app.auth.models import AccessToken
    from app.auth.service import hash_token
    from app.db import make_engine, make_sessionmaker, new_id, utcnow
    from app.event.models import Event
    from app.people.models import Organiser, Participant, SessionRole

    engine = make_engine(database_url)
    async with make_sessionmaker(engine)() as db:
        organiser = Organiser(email="soak@example.org", name="Soak", password_hash="-")
        db.add(organiser)
        await db.flush()
        event = Event(
            slug="soak",
            organiser_id=organiser.id,
            title="Soak",
            starts_on=date(2027, 3, 4),
            ends_on=date(2027, 3, 4),
            published=True,
        )
        db.add(event)
        await db.flush()
        sessions = [
            Session(
                event_id=event.id,
                title=f"Soak session {n}",
                starts_at=datetime(2027, 3, 4, 9 + n, tzinfo=UTC),
                ends_at=datetime(2027, 3, 4, 10 + n, tzinfo=UTC),
                moderation_required=True,
            )
            for n in (1, 2)
        ]
        db.add_all(sessions)
        await db.flush()

        def person(kind: str, name: str) -> Participant:
            return Participant(id=new_id(), event_id=event.id, kind=kind, display_name=name)

        chairs = [person("invited", "Chair one"), person("invited", "Chair two")]
        speaker = person("invited", "Speaker")
        talkers = [person("attendee", f"Chatter {n}") for n in range(chatters)]
        reader = person("attendee", "Reader")
        watchers = [person("attendee", f"Viewer {n}") for n in range(viewers)]
        everyone = [*chairs, speaker, *talkers, reader, *watchers]
        db.add_all(everyone)
        await db.flush()
        for session, chair in zip(sessions, chairs, strict=True):
            db.add(SessionRole(session_id=session.id, participant_id=chair.id, role="chair"))
            db.add(SessionRole(session_id=session.id, participant_id=speaker.id, role="speaker"))
        tokens = {p.id: secrets.token_urlsafe(32) for p in everyone}
        expires = utcnow() + timedelta(days=1)
        db.add_all(
            AccessToken(token_hash=hash_token(t), participant_id=pid, expires_at=expires)
            for pid, t in tokens.items()
        )
        await db.commit()
    await engine.dispose()
    return {
        "sessions": [s.id for s in sessions],
        "chairs": [tokens[c.id] for c in chairs],
        "speaker": tokens[speaker.id],
        "speaker_id": speaker.id,
        "chatters": [tokens[p.id] for p in talkers],
        "reader": tokens[reader.id],
        "viewers": [tokens[p.id] for p in watchers],
    }


# -- the speaker's process -----------------------------------------------------------------------


def pre_encode(width: int, height: int, rate: int, seconds: float, bitrate: int) -> list[bytes]:
    """A loop of moving synthetic video encoded once (VP8, a keyframe every second), so the
    publisher only packetizes: a cheap speaker."""
    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, rate)
    codec.gop_size = rate
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "-6",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
        "lag-in-frames": "0",
    }
    row = bytes(range(256)) * (width // 256 + 2)
    rows = [row[i % 256 : i % 256 + width] for i in range(256)]
    grain = os.urandom(2 * width * height).translate(bytes(b & 0x07 for b in range(256)))
    encoded: list[bytes] = []
    for index in range(int(seconds * rate)):
        frame = av.VideoFrame(width, height, "yuv420p")
        shift = (index * 5) % 256
        luma = b"".join(rows[(y + shift) % 256] for y in range(height))
        offset = (index * 7919) % (width * height)
        noise = grain[offset : offset + len(luma)]
        mixed = int.from_bytes(luma, "big") ^ int.from_bytes(noise, "big")
        frame.planes[0].update(mixed.to_bytes(len(luma), "big"))
        chroma = bytes([(index * 3) % 256]) * (width * height // 4)
        frame.planes[1].update(chroma)
        frame.planes[2].update(chroma)
        frame.pts = index
        frame.time_base = codec.time_base
        encoded += [bytes(packet) for packet in codec.encode(frame)]
    encoded += [bytes(packet) for packet in codec.encode(None)]
    return encoded


def publisher_process(port: int, world: dict[str, Any], commands: Any, results: Any) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_publisher(port, world, commands, results))


async def _publisher(port: int, world: dict[str, Any], commands: Any, results: Any) -> None:
    import av
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamTrack

    loopback_ice()
    loop = asyncio.get_running_loop()
    frames = await loop.run_in_executor(None, pre_encode, 320, 240, 15, 4.0, 300_000)

    class PreEncodedCamera(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.count = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.monotonic()
            delay = self.start + self.count / 15 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            packet = av.Packet(frames[self.count % len(frames)])
            packet.pts = self.count
            packet.time_base = fractions.Fraction(1, 15)
            self.count += 1
            return packet

    sock: LiveSocket | None = None
    pc: Any = None
    cameras: list[PreEncodedCamera] = []
    stats: dict[str, Any] = {"publishes": 0, "non_loopback": 0, "errors": Counter()}

    async def leave() -> None:
        nonlocal sock, pc
        if pc is not None:
            await pc.close()
            pc = None
        if sock is not None:
            await sock.close()
            sock = None

    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command[0] == "publish":
            session_id = command[1]
            started = time.monotonic()
            try:
                await leave()
                sock = await LiveSocket.open(port, session_id)
                await sock.join(world["speaker"])
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                cameras.append(PreEncodedCamera())
                pc.addTransceiver(cameras[-1], direction="sendonly")
                pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
                await pc.setLocalDescription(await pc.createOffer())
                stats["non_loopback"] += non_loopback_candidates(pc.localDescription.sdp)
                answer = await sock.request("media.publish", sdp=pc.localDescription.sdp)
                stats["non_loopback"] += non_loopback_candidates(answer["sdp"])
                await pc.setRemoteDescription(
                    RTCSessionDescription(sdp=answer["sdp"], type="answer")
                )
                deadline = time.monotonic() + 20
                while pc.connectionState != "connected":
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"publisher stuck in {pc.connectionState}")
                    await asyncio.sleep(0.05)
                stats["publishes"] += 1
                results.put(("published", time.monotonic() - started, None))
            except Exception as error:  # reported; the soak stops there
                stats["errors"][type(error).__name__] += 1
                results.put(("published", time.monotonic() - started, repr(error)))
        elif command[0] == "report":
            results.put(
                (
                    "report",
                    {
                        "state": pc.connectionState if pc is not None else "none",
                        "frames": sum(camera.count for camera in cameras),
                        "socket_open": sock is not None and sock.open_,
                        **{k: v for k, v in stats.items() if k != "errors"},
                        "errors": dict(stats["errors"]),
                    },
                )
            )
        elif command[0] == "stop":
            with contextlib.suppress(Exception):
                await leave()
            results.put(("stopped", None))
            return


# -- the viewers' process ------------------------------------------------------------------------


@dataclass
class ViewerState:
    port: int
    tokens: list[str]
    session_id: str = ""
    stopping: bool = False
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    next_token: int = 0
    pcs: set[Any] = field(default_factory=set)  # the viewers' peer connections now
    window: list[dict[str, Any]] = field(default_factory=list)
    non_loopback: int = 0


class RtpCounter:
    """RTP packets per kind, counted as datagrams arrive (before SRTP): a cheap viewer. Anything
    not RTP (STUN, DTLS, RTCP) goes on to aiortc as usual."""

    def __init__(self) -> None:
        self.kinds: dict[int, str] = {}
        self.packets: Counter[str] = Counter()
        self.first_video: float | None = None
        self.hooked = False

    def hook(self, pc: Any) -> None:
        self.kinds.clear()
        for transceiver in pc.getTransceivers():
            for codec in transceiver._codecs:
                self.kinds[codec.payloadType] = transceiver.kind
        if self.hooked:
            return
        for transceiver in pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                original = protocol.datagram_received

                def received(data: bytes, addr: Any, original: Any = original) -> None:
                    if 127 < data[0] < 192 and not 199 < data[1] < 208:
                        kind = self.kinds.get(data[1] & 0x7F, "other")
                        self.packets[kind] += 1
                        if kind == "video" and self.first_video is None:
                            self.first_video = time.monotonic()
                    else:
                        original(data, addr)

                protocol.datagram_received = received
            self.hooked = True
            return


def silence(pc: Any) -> None:
    """Make a client peer connection send nothing more (a crashed tab): its UDP sends vanish."""
    with contextlib.suppress(Exception):
        for transceiver in pc.getTransceivers():
            connection = transceiver.receiver.transport.transport._connection
            for protocol in connection._protocols:
                if protocol.transport is not None:
                    protocol.transport.sendto = lambda *args, **kwargs: None


def viewers_process(port: int, tokens: list[str], slots: int, commands: Any, results: Any) -> None:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_viewers(port, tokens, slots, commands, results))


async def _viewers(port: int, tokens: list[str], slots: int, commands: Any, results: Any) -> None:
    loopback_ice()
    loop = asyncio.get_running_loop()
    state = ViewerState(port, tokens)
    tasks: list[asyncio.Task[None]] = []

    def report() -> dict[str, Any]:
        window, state.window = state.window, []
        connected = sum(1 for pc in state.pcs if pc.connectionState == "connected")
        return {"connected": connected, "window": window, "non_loopback": state.non_loopback}

    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command[0] == "session":
            state.session_id = command[1]
            if not tasks:
                tasks = [asyncio.create_task(_viewer_slot(state, i)) for i in range(slots)]
        elif command[0] == "report":
            results.put(("report", report()))
        elif command[0] == "stop":
            state.stopping = True
            state.stop.set()
            await asyncio.wait(tasks, timeout=30)
            results.put(("stopped", report()))
            return


async def _viewer_slot(state: ViewerState, index: int) -> None:
    await asyncio.sleep(index * 0.4)  # not all at once
    cycle = 0
    while not state.stopping:
        cycle += 1
        record = await _one_viewer(state, abrupt=(index + cycle) % 3 == 0)
        state.window.append(record)
        if not state.stopping:
            await asyncio.sleep(random.uniform(0.3, 1.5))


async def _one_viewer(state: ViewerState, abrupt: bool) -> dict[str, Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    token = state.tokens[state.next_token % len(state.tokens)]
    state.next_token += 1
    record: dict[str, Any] = {
        "abrupt": abrupt,
        "error": None,
        "session": state.session_id,
        "at": time.time(),
    }
    sock: LiveSocket | None = None
    pc: Any = None
    counter = RtpCounter()
    lock = asyncio.Lock()
    renegotiations: set[asyncio.Task[None]] = set()
    was_connected = False

    async def accept(offer: dict[str, Any]) -> None:
        assert sock is not None
        async with lock:
            state.non_loopback += non_loopback_candidates(offer["sdp"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            counter.hook(pc)
            state.non_loopback += non_loopback_candidates(pc.localDescription.sdp)
            await sock.request(
                "media.answer", peer_id=offer["peer_id"], sdp=pc.localDescription.sdp
            )

    async def renegotiate(payload: bytes) -> None:
        try:
            await accept(json.loads(payload))
            record["renegotiations"] = record.get("renegotiations", 0) + 1
        except Refused as error:
            record["renegotiation_error"] = error.code
        except Exception as error:
            record["renegotiation_error"] = type(error).__name__

    def on_event(type_: bytes, payload: bytes) -> None:
        if type_ == b"media.offered" and pc is not None:
            task = asyncio.create_task(renegotiate(payload))
            renegotiations.add(task)
            task.add_done_callback(renegotiations.discard)

    started = time.monotonic()
    try:
        sock = await LiveSocket.open(state.port, state.session_id, on_event)
        await sock.join(token)
        asked = time.monotonic()
        offer = await sock.request("media.watch")
        record["watch_ms"] = (time.monotonic() - asked) * 1000
        record["tracks"] = len(offer.get("tracks") or [])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        state.pcs.add(pc)
        await accept(offer)
        answered = time.monotonic()
        until = answered + random.uniform(4.0, 12.0)
        while time.monotonic() < until and not state.stopping:
            if pc.connectionState == "connected" and not was_connected:
                was_connected = True
                record["connect_ms"] = (time.monotonic() - answered) * 1000
            if sock.closed.done():
                record["error"] = f"closed {sock.closed.result()}"
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.stop.wait(), 0.2)
        record["cut_short"] = state.stopping  # the run ended during this visit
        if counter.first_video is not None:
            record["first_video_ms"] = (counter.first_video - answered) * 1000
    except Refused as error:
        record["error"] = error.code
    except Exception as error:
        record["error"] = type(error).__name__
    finally:
        record["video"] = counter.packets["video"]
        record["audio"] = counter.packets["audio"]
        record["stay_s"] = time.monotonic() - started
        state.pcs.discard(pc)
        for task in list(renegotiations):
            task.cancel()
        with contextlib.suppress(Exception):
            if abrupt:
                if sock is not None:
                    sock.abort()
                if pc is not None:
                    silence(pc)
                    await pc.close()
            else:
                if pc is not None:
                    await pc.close()
                if sock is not None:
                    await sock.close()
    return record


# -- chat, questions and the chair (this process) ------------------------------------------------


@dataclass
class Sent:
    key: str
    type: str
    fields: dict[str, Any]
    session: str
    sent_at: float  # wall clock, as in the text
    acked_at: float | None = None
    error: str | None = None
    busy: int = 0
    in_flight: bool = False


@dataclass
class Tally:
    """What the chat side measured: the whole run and the current report window."""

    sent: dict[str, Sent] = field(default_factory=dict)
    acked: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    busy: int = 0
    reconnects: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    chat_delays: list[float] = field(default_factory=list)
    ack_delays: list[float] = field(default_factory=list)
    window_chat: list[float] = field(default_factory=list)
    window_ack: list[float] = field(default_factory=list)
    seen: Counter[str] = field(default_factory=Counter)
    approved_seen: int = 0
    watching: int = 0
    pongs: list[tuple[float, float]] = field(default_factory=list)  # (wall clock, round trip)
    window_pong: list[float] = field(default_factory=list)
    fsyncs: list[tuple[float, float]] = field(default_factory=list)  # (wall clock, seconds)
    window_fsync: list[float] = field(default_factory=list)

    def pong(self, rtt: float) -> None:
        self.pongs.append((time.time(), rtt))
        self.window_pong.append(rtt)

    def count(self, type_: str) -> int:
        return sum(1 for s in self.sent.values() if s.type == type_)


class Person:
    """One person's live socket here: keyed actions, `room.busy` resent after its hint, and an
    unexpected close answered as the page does (join again, resend what was unanswered)."""

    def __init__(self, soak: Soak, token: str, on_event: Any = None) -> None:
        self.soak, self.token, self.on_event = soak, token, on_event
        self.sock: LiveSocket | None = None
        self.session: str | None = None
        self.pending: dict[str, Sent] = {}
        self.leaving = False
        self.reconnecting: asyncio.Task[None] | None = None

    async def connect(self, session_id: str) -> None:
        self.session = session_id
        self.sock = await LiveSocket.open(self.soak.port, session_id, self.on_event)
        await self.sock.join(self.token)
        sock = self.sock
        sock.closed.add_done_callback(lambda f: self._lost(sock, f))

    def _lost(self, sock: LiveSocket, closed: asyncio.Future[int]) -> None:
        if self.leaving or sock is not self.sock:
            return
        self.soak.tally.close_codes[closed.result()] += 1
        if self.reconnecting is None or self.reconnecting.done():
            self.reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        assert self.session is not None
        self.soak.tally.reconnects += 1
        for attempt in range(20):
            try:
                await asyncio.sleep(0.5 * attempt)
                await self.connect(self.session)
                break
            except Exception:
                continue
        for sent in list(self.pending.values()):
            if not sent.in_flight:
                self._send(sent)

    def act(self, type_: str, key: str, **fields: Any) -> Sent:
        sent = Sent(key, type_, fields, self.session or "", time.time())
        self.soak.tally.sent[key] = sent
        self.pending[key] = sent
        self._send(sent)
        return sent

    def _send(self, sent: Sent) -> None:
        if self.sock is None or not self.sock.open_:
            return  # resent once the socket is back
        sent.in_flight = True
        future = self.sock.send_action(sent.type, key=sent.key, **sent.fields)
        future.add_done_callback(lambda f: self._answered(sent, f))

    def _answered(self, sent: Sent, future: asyncio.Future[dict[str, Any]]) -> None:
        sent.in_flight = False
        if future.cancelled() or future.exception() is not None:
            return  # the socket went: resent after the reconnect
        reply = future.result()
        tally = self.soak.tally
        if reply["type"] == "ok":
            sent.acked_at = time.time()
            self.pending.pop(sent.key, None)
            tally.acked[sent.type] += 1
            if sent.type == "chat.send":
                delay = sent.acked_at - sent.sent_at
                tally.ack_delays.append(delay)
                tally.window_ack.append(delay)
        elif reply.get("code") == "room.busy":
            sent.busy += 1
            tally.busy += 1
            wait = (reply.get("retry_after_ms") or 250) / 1000
            asyncio.get_running_loop().call_later(wait, self._resend, sent)
        else:
            sent.error = str(reply.get("code"))
            self.pending.pop(sent.key, None)
            tally.refused[f"{sent.type} {sent.error}"] += 1

    def _resend(self, sent: Sent) -> None:
        if sent.key in self.pending and not sent.in_flight:
            self._send(sent)

    async def settle(self, timeout: float) -> None:
        """Wait until every action sent has been answered (or the timeout)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def move(self, session_id: str) -> None:
        await self.settle(15.0)
        await self.leave()
        self.leaving = False
        await self.connect(session_id)

    async def leave(self) -> None:
        self.leaving = True
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        if self.sock is not None:
            await self.sock.close()


class Soak:
    def __init__(self, args: argparse.Namespace, port: int, world: dict[str, Any]) -> None:
        self.args, self.port, self.world = args, port, world
        self.tally = Tally()
        self.target = world["sessions"][0]
        self.sending = True
        self.counter = 0

    def key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:09d}"

    # the reader: the chat delay, each acknowledged message seen once

    def on_reader(self, type_: bytes, payload: bytes) -> None:
        tally = self.tally
        if type_ == b"message.posted":
            at = payload.find(TEXT_MARK)
            if at < 0:
                return
            start = at + len(TEXT_MARK)
            end = payload.find(b" ", start)
            key = payload[start:end].decode()
            tally.seen[key] += 1
            if tally.seen[key] == 1:
                stamp = end + 3  # ' t='
                delay = time.time() - float(payload[stamp : payload.find(b" ", stamp)])
                tally.chat_delays.append(delay)
                tally.window_chat.append(delay)
        elif type_ == b"question.approved":
            tally.approved_seen += 1
        elif type_ == b"watching.changed":
            tally.watching = int(json.loads(payload)["count"])

    # the chair: every question approved

    def chair_events(self, chair: list[Person]) -> Any:
        def on_event(type_: bytes, payload: bytes) -> None:
            if type_ == b"question.submitted":
                question_id = json.loads(payload)["question"]["id"]
                chair[0].act("question.approve", f"ap{question_id}", question_id=question_id)

        return on_event

    def make_chair(self, token: str) -> Person:
        holder: list[Person] = []
        chair = Person(self, token, self.chair_events(holder))
        holder.append(chair)
        return chair

    # chatters

    async def chatter(self, person: Person, index: int, start: float) -> None:
        args = self.args
        period = args.chatters / args.chat_rate
        question_period = args.chatters / args.question_rate
        next_chat = start + index / args.chat_rate
        next_question = start + index / args.question_rate + 0.5 / args.chat_rate
        while self.sending:
            due = min(next_chat, next_question)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not self.sending:
                break
            if person.session != self.target:
                await person.move(self.target)
                now = time.monotonic()
                next_chat = max(next_chat, now)  # missed turns are skipped, not bunched up
                next_question = max(next_question, now)
                continue
            if due == next_chat:
                key = self.key("c")
                text = f"soak k={key} t={time.time():.6f} {FILLER}"
                person.act("chat.send", key, text=text)
                next_chat += period
            else:
                key = self.key("q")
                text = f"soak k={key} t={time.time():.6f} what about {key}?"
                person.act("question.ask", key, text=text)
                next_question += question_period


# -- the server and what it holds ----------------------------------------------------------------

SERVER_BOOT = (
    "import aioice.ice, sys\n"
    "aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ['127.0.0.1']\n"
    "from app.cli import main\n"
    "main(['serve', '--host', '127.0.0.1', '--port', sys.argv[1]])\n"
)


def start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER_BOOT, str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the soak, which stops the server in order
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"the server did not start; see {log}") from None
            time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """Whether the process runs (not gone, not a zombie waiting for us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def socket_inodes(*tables: str) -> set[str]:
    inodes: set[str] = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9:
                    inodes.add(parts[9] if table != "unix" else parts[6])
    return inodes


def fds_by_kind(pid: int) -> tuple[Counter[str], Counter[str]]:
    """The process's open fds by kind (udp, tcp, unix and other sockets, pipes, anon inodes,
    files), and the files by path."""
    udp, tcp = socket_inodes("udp", "udp6"), socket_inodes("tcp", "tcp6")
    unix = socket_inodes("unix")
    kinds: Counter[str] = Counter()
    files: Counter[str] = Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inode = link[8:-1]
            tables = (("udp", udp), ("tcp", tcp), ("unix", unix))
            kinds[next((name for name, inodes in tables if inode in inodes), "socket")] += 1
        elif link.startswith("pipe:"):
            kinds["pipe"] += 1
        elif link.startswith("anon_inode:"):
            kinds[link[11:].strip("[]")] += 1
        else:
            kinds["file"] += 1
            files[link] += 1
    return kinds, files


@dataclass
class Snapshot:
    at: float
    rss_mb: float
    fds: int
    udp: int
    threads: int
    cpu: float
    kinds: Counter[str]
    files: Counter[str]


def snapshot(pid: int) -> Snapshot:
    if not alive(pid):
        raise RuntimeError("the server process has exited")
    kinds, files = fds_by_kind(pid)
    return Snapshot(
        at=time.monotonic(),
        rss_mb=status_field(pid, "VmRSS") / 1024,
        fds=sum(kinds.values()),
        udp=kinds["udp"],
        threads=status_field(pid, "Threads"),
        cpu=cpu_seconds(pid),
        kinds=kinds,
        files=files,
    )


async def stored_chat(engine: Any, sessions: list[str]) -> int:
    from sqlalchemy import text

    async with engine.connect() as conn:
        return int(
            await conn.scalar(
                text(
                    "SELECT count(*) FROM live_messages WHERE kind = 'chat' "
                    "AND session_id IN (:a, :b) AND text LIKE 'soak k=%'"
                ),
                {"a": sessions[0], "b": sessions[1]},
            )
        )


async def stored_keys(engine: Any) -> tuple[Counter[str], dict[str, list[str]]]:
    """Chat keys stored (how often each) and each question key's statuses."""
    from sqlalchemy import text

    pattern = re.compile(r"soak k=([A-Za-z0-9_-]+) ")
    chat: Counter[str] = Counter()
    questions: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for (body,) in await conn.execute(
            text("SELECT text FROM live_messages WHERE kind = 'chat'")
        ):
            match = pattern.match(body)
            if match:
                chat[match.group(1)] += 1
        for body, status in await conn.execute(text("SELECT text, status FROM live_questions")):
            match = pattern.match(body)
            if match:
                questions.setdefault(match.group(1), []).append(status)
    return chat, questions


@dataclass
class LogScan:
    errors: list[str] = field(default_factory=list)  # ERROR and Traceback lines
    warnings: Counter[str] = field(default_factory=Counter)  # by message, numbers blanked
    # Lines with no timestamp and level that are not a traceback's: the `dais.*` loggers are not
    # in app/logs.py's configuration, so Python's last-resort handler prints their warnings and
    # errors as the bare message.
    bare: list[str] = field(default_factory=list)


STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def scan_log(path: Path) -> LogScan:
    scan = LogScan()
    in_traceback = False
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for raw in log:
            line = raw.rstrip()
            if " ERROR " in line or "ERROR:" in line or line.startswith("Traceback"):
                scan.errors.append(line)
                in_traceback = line.startswith("Traceback")
            elif STAMPED.match(line):
                in_traceback = False
                if " WARNING " in line:
                    message = line.split(" WARNING ", 1)[1]
                    scan.warnings[re.sub(r"\d+", "N", message)[:140]] += 1
            elif in_traceback or line.startswith((" ", "Dais: ")) or not line:
                in_traceback = in_traceback and not re.match(r"^\w[\w.]*(Error|Exception)", line)
            else:
                scan.bare.append(line)
    return scan


# -- the run -------------------------------------------------------------------------------------


async def pg_admin(sql: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


class Children:
    """The client processes, each with its command and result queues."""

    def __init__(self) -> None:
        self.context = mp.get_context("spawn")
        self.processes: list[Any] = []

    def start(self, target: Any, *args: Any) -> tuple[Any, Any, Any]:
        commands, results = self.context.Queue(), self.context.Queue()
        process = self.context.Process(target=target, args=(*args, commands, results), daemon=True)
        process.start()
        self.processes.append(process)
        return process, commands, results

    def kill(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.kill()
            process.join(timeout=5)


async def receive(results: Any, timeout: float) -> Any:
    """The next message from a child, waited for in short steps (so that no thread of ours is
    still blocked on a queue when the soak stops)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await loop.run_in_executor(None, results.get, True, 0.5)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise TimeoutError("a client process did not answer") from None


ROW_HEADER = (
    f"{'min':>5} {'rss_mb':>7} {'fds':>5} {'udp':>4} {'viewers':>7} {'room':>5} "
    f"{'chat_p50':>8} {'chat_p99':>8} {'ack_p99':>8} {'sent':>7} {'acked':>7} {'stored':>7} "
    f"{'cpu%':>5} | {'loop_p99':>8} {'loop_max':>8} {'fsync_max':>9} {'cycles':>6} {'video_ok':>8} {'busy':>5} "
    f"{'clients_cpu%':>12}"
)


def format_row(v: dict[str, Any]) -> str:
    return (
        f"{v['minute']:>5.1f} {v['rss_mb']:>7.1f} {v['fds']:>5} {v['udp']:>4} {v['viewers']:>7} "
        f"{v['room']:>5} {v['chat_p50']:>8.1f} {v['chat_p99']:>8.1f} {v['ack_p99']:>8.1f} "
        f"{v['sent']:>7} {v['acked']:>7} {v['stored']:>7} {v['cpu']:>5.0f} | "
        f"{v['loop_p99']:>8.1f} {v['loop_max']:>8.1f} {v['fsync_max']:>9.1f} {v['cycles']:>6} {v['video_ok']:>8} "
        f"{v['busy']:>5} {v['clients_cpu']:>12.0f}"
    )


class Run:
    """The run itself, in this process: the chat side, the chairs, and the client processes."""

    last: Snapshot  # at the previous row
    last_clients: float
    window_records: list[dict[str, Any]]
    minutes: float
    started_wall: float

    def __init__(
        self,
        args: argparse.Namespace,
        port: int,
        world: dict[str, Any],
        pid: int,
        engine: Any,
        workdir: Path,
    ) -> None:
        self.args, self.port, self.world, self.pid, self.engine = args, port, world, pid, engine
        self.workdir = workdir
        self.soak = Soak(args, port, world)
        self.tally = self.soak.tally
        self.sessions: list[str] = world["sessions"]
        self.children = Children()
        self.rows: list[dict[str, Any]] = []
        self.viewer_records: list[dict[str, Any]] = []
        self.viewers_connected = 0
        self.switched_at: float | None = None  # wall clock
        self.non_loopback = 0

    async def start_clients(self) -> None:
        port, world = self.port, self.world
        _, self.to_publisher, self.from_publisher = self.children.start(
            publisher_process, port, world
        )
        _, self.to_viewers, self.from_viewers = self.children.start(
            viewers_process, port, world["viewers"], self.args.viewers
        )

    async def publish(self, session_id: str, chair: Person) -> None:
        """The speaker publishes in `session_id`; the chair puts them live."""
        self.to_publisher.put(("publish", session_id))
        _, seconds, error = await receive(self.from_publisher, 120)
        if error:
            raise RuntimeError(f"the speaker could not publish: {error}")
        assert chair.sock is not None
        await chair.sock.request(
            "stage.go_live", key=self.soak.key("live"), person_id=self.world["speaker_id"]
        )
        print(f"  speaker live (published in {seconds:.1f} s)", flush=True)

    async def viewer_report(self, command: str = "report") -> None:
        self.to_viewers.put((command,))
        wanted = "stopped" if command == "stop" else "report"
        while True:
            kind, report = await receive(self.from_viewers, 90)
            if kind == wanted:
                break
        self.viewer_records += report["window"]
        self.viewers_connected = report["connected"]
        self.non_loopback = report["non_loopback"]
        self.window_records = report["window"]

    def clients_cpu(self) -> float:
        own = cpu_seconds(os.getpid())
        return own + sum(cpu_seconds(p.pid) for p in self.children.processes)

    async def row(self, minute: float) -> None:
        now = snapshot(self.pid)
        await self.viewer_report()
        clients = self.clients_cpu()
        wall = now.at - self.last.at
        tally = self.tally
        values = {
            "minute": minute,
            "rss_mb": now.rss_mb,
            "fds": now.fds,
            "udp": now.udp,
            "viewers": self.viewers_connected,
            "room": tally.watching,
            "chat_p50": percentile(tally.window_chat, 50) * 1000,
            "chat_p99": percentile(tally.window_chat, 99) * 1000,
            "ack_p99": percentile(tally.window_ack, 99) * 1000,
            "loop_p99": percentile(tally.window_pong, 99) * 1000,
            "loop_max": max(tally.window_pong, default=float("nan")) * 1000,
            "fsync_max": max(tally.window_fsync, default=float("nan")) * 1000,
            "sent": tally.count("chat.send"),
            "acked": tally.acked["chat.send"],
            "stored": await stored_chat(self.engine, self.sessions),
            "cpu": (now.cpu - self.last.cpu) / wall * 100,
            "cycles": len(self.window_records),
            "video_ok": sum(1 for r in self.window_records if r["video"] > 0),
            "busy": tally.busy,
            "clients_cpu": (clients - self.last_clients) / wall * 100,
        }
        tally.window_chat, tally.window_ack, tally.window_pong = [], [], []
        tally.window_fsync = []
        self.last, self.last_clients = now, clients
        self.rows.append(values)
        print(format_row(values), flush=True)

    async def run(self) -> dict[str, Any]:
        try:
            return await self._run()
        finally:
            self.children.kill()

    async def _run(self) -> dict[str, Any]:
        args, soak, world, tally = self.args, self.soak, self.world, self.tally
        session_one, session_two = self.sessions
        loop = asyncio.get_running_loop()

        # Warm-up, then the idle baseline: ten people join at once, say hello and leave (the
        # database pool fills as it does under load, and the server has imported what it needs).
        warm = [Person(soak, token) for token in world["chatters"][:10]]
        await asyncio.gather(*(person.connect(session_one) for person in warm))
        await asyncio.gather(
            *(
                person.sock.request("chat.send", text="hello", key=f"warmup-{n:06d}")
                for n, person in enumerate(warm)
                if person.sock is not None
            )
        )
        for person in warm:
            await person.leave()
        await asyncio.sleep(3.0)
        idle_start = snapshot(self.pid)
        print(f"idle at start: {describe(idle_start)}", flush=True)

        await self.start_clients()
        chair_one = soak.make_chair(world["chairs"][0])
        await chair_one.connect(session_one)
        print("session one:", flush=True)
        await self.publish(session_one, chair_one)
        reader_one = Person(soak, world["reader"], soak.on_reader)
        await reader_one.connect(session_one)
        readers = [reader_one]

        async def probe() -> None:
            """Ping the server five times a second on the newest reader's socket."""
            while True:
                await asyncio.sleep(0.2)
                sock = readers[-1].sock
                if sock is not None and sock.open_:
                    sock.on_pong = tally.pong
                    sock.ping()

        async def disk() -> None:
            """Time a 4 KiB write and fsync next to the database once a second: what a commit
            with synchronous=FULL waits for, on this (shared) disk."""
            path = self.workdir / "fsync-probe"
            with path.open("wb") as probe_file:
                while True:
                    await asyncio.sleep(1.0)
                    took = await loop.run_in_executor(None, timed_fsync, probe_file)
                    tally.fsyncs.append((time.time(), took))
                    tally.window_fsync.append(took)

        probing = [asyncio.create_task(probe()), asyncio.create_task(disk())]
        joining = time.monotonic()
        chatters = [Person(soak, token) for token in world["chatters"]]
        for batch in range(0, len(chatters), 10):
            await asyncio.gather(*(c.connect(session_one) for c in chatters[batch : batch + 10]))
        print(
            f"  {len(chatters)} chatters joined in {time.monotonic() - joining:.1f} s; "
            f"{args.viewers} viewers coming and going",
            flush=True,
        )
        self.to_viewers.put(("session", session_one))

        started = time.monotonic()
        duration = args.minutes * 60
        switch_at, end_at = started + duration * args.switch_at, started + duration
        chatting = [
            asyncio.create_task(soak.chatter(c, i, started)) for i, c in enumerate(chatters)
        ]
        self.last, self.last_clients = snapshot(self.pid), self.clients_cpu()
        print(ROW_HEADER, flush=True)
        chair_two: Person | None = None
        reader_two: Person | None = None
        retiring: asyncio.Task[None] | None = None

        async def retire_session_one() -> None:
            """Chair and reader of session one stay until every chatter has moved on and what
            they sent there is answered."""
            while any(c.session != session_two for c in chatters):
                await asyncio.sleep(0.5)
            await chair_one.settle(20.0)
            await asyncio.sleep(2.0)
            await chair_one.settle(20.0)
            await reader_one.leave()
            await chair_one.leave()

        every = args.report_every * 60
        next_row = started + every
        while (now := time.monotonic()) < end_at:
            if not alive(self.pid):
                raise RuntimeError("the server process has exited")
            if chair_two is None and now >= switch_at:
                assert chair_one.sock is not None
                self.switched_at = time.time()
                await chair_one.sock.request("session.end", key=soak.key("end"))
                print(
                    f"-- minute {(now - started) / 60:.1f}: session one ended; session two:",
                    flush=True,
                )
                chair_two = soak.make_chair(world["chairs"][1])
                await chair_two.connect(session_two)
                reader_two = Person(soak, world["reader"], soak.on_reader)
                await reader_two.connect(session_two)
                readers.append(reader_two)
                await self.publish(session_two, chair_two)
                self.to_viewers.put(("session", session_two))
                soak.target = session_two
                retiring = asyncio.create_task(retire_session_one())
            elif now >= next_row:
                await self.row((now - started) / 60)
                next_row += every
            else:
                await asyncio.sleep(0.2)
        await self.row((time.monotonic() - started) / 60)
        self.minutes = (time.monotonic() - started) / 60
        self.started_wall = time.time() - self.minutes * 60
        for task in probing:
            task.cancel()
        await asyncio.gather(*probing, return_exceptions=True)

        # Everyone leaves: viewers first; the chat settles; the chair ends the session.
        soak.sending = False
        await self.viewer_report("stop")
        await asyncio.gather(*chatting, return_exceptions=True)
        chairs = [chair_one] + ([chair_two] if chair_two else [])
        for person in chatters:
            await person.settle(20.0)
        await asyncio.sleep(2.0)  # the last questions reach the chair, the last messages the reader
        for person in chairs:
            await person.settle(20.0)
        if retiring is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(retiring, 30)
        self.to_publisher.put(("report",))
        publisher_report = (await receive(self.from_publisher, 30))[1]
        last_chair = chairs[-1]
        assert last_chair.sock is not None
        await last_chair.sock.request("session.end", key=soak.key("end"))
        self.to_publisher.put(("stop",))
        await receive(self.from_publisher, 60)
        for person in [*chatters, *readers, *chairs]:
            await person.leave()
        for process in self.children.processes:
            await loop.run_in_executor(None, process.join, 15)

        # Idle again: peers close within 5 s of their sockets; wait for the counts to settle.
        left = time.monotonic()
        idle_end = snapshot(self.pid)
        stable = 0
        while time.monotonic() - left < args.settle:
            await asyncio.sleep(2.0)
            again = snapshot(self.pid)
            if (again.fds, again.udp) == (idle_end.fds, idle_end.udp):
                stable += 1
            else:
                stable = 0
            idle_end = again
            if (again.fds <= idle_start.fds and again.udp <= idle_start.udp) or stable >= 5:
                break
        return {
            "idle_start": idle_start,
            "idle_end": idle_end,
            "settled_s": time.monotonic() - left,
            "publisher": publisher_report,
            "minutes": self.minutes,
            "check": await check(self.engine, tally),
        }


def episodes(tally: Tally, threshold: float = 1.0) -> list[dict[str, float]]:
    """Chat messages acknowledged more than `threshold` s after sending, grouped into episodes
    (sent within 2 s of each other), each with the worst ping round trip meanwhile."""
    slow = sorted(
        (s.sent_at, s.acked_at - s.sent_at)
        for s in tally.sent.values()
        if s.type == "chat.send" and s.acked_at is not None and s.acked_at - s.sent_at > threshold
    )
    found: list[dict[str, float]] = []
    for sent_at, delay in slow:
        if found and sent_at <= found[-1]["last"] + 2.0:
            episode = found[-1]
            episode["count"] += 1
            episode["last"] = sent_at
            episode["worst"] = max(episode["worst"], delay)
            episode["until"] = max(episode["until"], sent_at + delay)
        else:
            found.append(
                {
                    "first": sent_at,
                    "last": sent_at,
                    "count": 1,
                    "worst": delay,
                    "until": sent_at + delay,
                }
            )
    for episode in found:
        episode["ping"] = max(
            (rtt for at, rtt in tally.pongs if episode["first"] <= at <= episode["until"] + 1),
            default=float("nan"),
        )
        episode["fsync"] = max(
            (
                took
                for at, took in tally.fsyncs
                if episode["first"] - 1 <= at <= episode["until"] + 1
            ),
            default=float("nan"),
        )
    return found


def timed_fsync(file: Any) -> float:
    started = time.perf_counter()
    file.write(b"\0" * 4096)
    file.flush()
    os.fsync(file.fileno())
    return time.perf_counter() - started


def describe(s: Snapshot) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.kinds.items()))
    return f"rss {s.rss_mb:.1f} MB, {s.fds} fds ({kinds}), {s.udp} UDP sockets, {s.threads} threads"


async def check(engine: Any, tally: Tally) -> dict[str, Any]:
    """Every acknowledged chat message stored exactly once; what was sent and never acknowledged."""
    chat, questions = await stored_keys(engine)
    sent = {k: s for k, s in tally.sent.items() if s.type == "chat.send"}
    acked = {k for k, s in sent.items() if s.acked_at is not None}
    asked = {k for k, s in tally.sent.items() if s.type == "question.ask"}
    return {
        "sent": len(sent),
        "acked": len(acked),
        "stored": sum(chat.values()),
        "acked_once": sum(1 for k in acked if chat[k] == 1),
        "acked_missing": sum(1 for k in acked if chat[k] == 0),
        "stored_twice": sum(1 for k in chat if chat[k] > 1),
        "stored_unknown": sum(1 for k in chat if k not in sent),
        "unacked_stored": sum(1 for k in sent if k not in acked and chat[k] > 0),
        "lost": len(sent) - len(acked),
        "no_answer": sum(1 for s in sent.values() if s.acked_at is None and s.error is None),
        "refused": dict(Counter(s.error for s in sent.values() if s.error)),
        "busy_resent": sum(1 for s in sent.values() if s.busy),
        "unseen": sum(1 for k in acked if tally.seen[k] == 0),
        "seen_twice": sum(1 for k in acked if tally.seen[k] > 1),
        "questions_sent": len(asked),
        "questions_acked": tally.acked["question.ask"],
        "questions_stored": sum(len(questions.get(k, [])) for k in asked),
        "questions_twice": sum(1 for k in asked if len(questions.get(k, [])) > 1),
        "questions_approved": sum(questions.get(k, []).count("approved") for k in asked),
        "approvals_sent": tally.count("question.approve"),
        "approvals_acked": tally.acked["question.approve"],
        "approved_seen": tally.approved_seen,
    }


def summary(args: argparse.Namespace, run: Run, out: dict[str, Any], log: Path) -> None:
    tally, check_ = run.tally, out["check"]
    start, end = out["idle_start"], out["idle_end"]
    print("\n" + ROW_HEADER)
    for values in run.rows:
        print(format_row(values))
    print(f"\nidle at start: {describe(start)}")
    print(f"idle at end ({out['settled_s']:.0f} s after everyone left): {describe(end)}")
    grown = {
        k: end.kinds[k] - start.kinds[k]
        for k in set(start.kinds) | set(end.kinds)
        if end.kinds[k] != start.kinds[k]
    }
    files = {
        path: end.files[path] - start.files[path]
        for path in set(start.files) | set(end.files)
        if end.files[path] != start.files[path]
    }
    print(
        f"  back to idle: fds {'yes' if end.fds <= start.fds else 'no'} "
        f"({end.fds - start.fds:+d}: {grown or 'no change by kind'}), "
        f"UDP {'yes' if end.udp <= start.udp else 'no'} ({end.udp - start.udp:+d}), "
        f"threads {end.threads - start.threads:+d}, rss {end.rss_mb - start.rss_mb:+.1f} MB"
    )
    for path, change in sorted(files.items()):
        print(f"  files open {change:+d}: {path}")
    c = check_
    print(
        f"chat: sent {c['sent']}, acknowledged {c['acked']}, stored {c['stored']}; acknowledged "
        f"and stored exactly once {c['acked_once']}, acknowledged but not stored "
        f"{c['acked_missing']}, stored more than once {c['stored_twice']}, stored but never "
        f"acknowledged {c['unacked_stored']}, stored and never sent {c['stored_unknown']}"
    )
    print(
        f"  lost (sent, never acknowledged) {c['lost']}: no answer {c['no_answer']}, refused "
        f"{c['refused'] or 0}; room.busy answers {tally.busy} (messages resent after one: "
        f"{c['busy_resent']}); sockets reconnected {tally.reconnects} "
        f"(close codes {dict(tally.close_codes) or 'none'})"
    )
    print(
        f"  the reader saw {c['acked'] - c['unseen']} of the {c['acked']} acknowledged "
        f"messages (missing {c['unseen']}, seen twice {c['seen_twice']}); chat delay "
        f"p50 {percentile(tally.chat_delays, 50) * 1000:.1f} ms, p99 "
        f"{percentile(tally.chat_delays, 99) * 1000:.1f} ms, max "
        f"{max(tally.chat_delays, default=0) * 1000:.0f} ms; ack p50 "
        f"{percentile(tally.ack_delays, 50) * 1000:.1f} ms, p99 "
        f"{percentile(tally.ack_delays, 99) * 1000:.1f} ms"
    )
    slow = episodes(tally)
    rtts = [rtt for _, rtt in tally.pongs]
    print(
        f"  acknowledged more than 1 s after sending: {sum(int(e['count']) for e in slow)} "
        f"messages in {len(slow)} episodes; server ping round trip p50 "
        f"{percentile(rtts, 50) * 1000:.1f} ms, p99 {percentile(rtts, 99) * 1000:.1f} ms, max "
        f"{max(rtts, default=0) * 1000:.0f} ms"
    )
    for e in sorted(slow, key=lambda e: -e["worst"])[:8]:
        print(
            f"    minute {(e['first'] - run.started_wall) / 60:.2f}: {int(e['count'])} messages "
            f"sent over {e['last'] - e['first']:.1f} s, worst {e['worst'] * 1000:.0f} ms; ping "
            f"round trip meanwhile up to {e['ping'] * 1000:.0f} ms, fsync up to "
            f"{e['fsync'] * 1000:.0f} ms"
        )
    print(
        f"questions: asked {c['questions_sent']}, acknowledged {c['questions_acked']}, stored "
        f"{c['questions_stored']} (twice {c['questions_twice']}), approved "
        f"{c['questions_approved']}; approvals sent {c['approvals_sent']}, acknowledged "
        f"{c['approvals_acked']}; question.approved seen by the reader {c['approved_seen']}"
    )
    records = run.viewer_records
    errors = Counter(r["error"] for r in records if r["error"])
    renegotiation_errors = Counter(
        r["renegotiation_error"] for r in records if r.get("renegotiation_error")
    )
    with_video = [r for r in records if r["video"] > 0]
    print(
        f"viewers: {len(records)} visits ({sum(r['abrupt'] for r in records)} left abruptly, "
        f"{sum(1 for r in records if r.get('cut_short'))} cut short by the end of the run), "
        f"{len(with_video)} received video, "
        f"{sum(1 for r in records if r['audio'] > 0)} audio; errors {dict(errors) or 'none'}; "
        f"renegotiations {sum(r.get('renegotiations', 0) for r in records)} "
        f"(errors {dict(renegotiation_errors) or 'none'})"
    )
    blind = [r for r in records if r["video"] == 0 and not r.get("cut_short")]
    if blind:
        switch = run.switched_at or 0.0
        around = [r for r in blind if r["at"] - 2 < switch < r["at"] + r["stay_s"] + 2]
        print(
            f"  without video: {len(blind)} visits, {len(around)} of them across the session "
            f"switch; the others: "
            + (
                "; ".join(
                    f"stayed {r['stay_s']:.1f} s, {r.get('tracks', '?')} tracks offered, "
                    f"{'connected' if 'connect_ms' in r else 'never connected'}, "
                    f"{r['audio']} audio packets, error {r['error']}"
                    for r in [r for r in blind if r not in around][:5]
                )
                or "none"
            )
        )
    watch = [r["watch_ms"] for r in records if "watch_ms" in r]
    connect = [r["connect_ms"] for r in records if "connect_ms" in r]
    first = [r["first_video_ms"] for r in records if "first_video_ms" in r]
    print(
        f"  media.watch answered p50 {percentile(watch, 50):.0f} ms, p99 "
        f"{percentile(watch, 99):.0f} ms; connected after the answer p50 "
        f"{percentile(connect, 50):.0f} ms, p99 {percentile(connect, 99):.0f} ms; first video "
        f"packet p50 {percentile(first, 50):.0f} ms, p99 {percentile(first, 99):.0f} ms"
    )
    publisher = out["publisher"]
    print(
        f"speaker: {publisher['publishes']} publishes, {publisher['frames']} video frames sent, "
        f"peer connection {publisher['state']} at the end of the run, "
        f"errors {publisher['errors'] or 'none'}; ICE candidates not on loopback "
        f"{run.non_loopback + publisher['non_loopback']}"
    )
    scan = scan_log(log)
    error_count = len(scan.errors)
    print(
        f"server log: {error_count} ERROR/Traceback lines, {sum(scan.warnings.values())} "
        f"warnings, {len(scan.bare)} bare lines (no timestamp or level: the dais.* loggers)"
    )
    for line in scan.errors[:8]:
        print(f"  {line[:200]}")
    for message, count in scan.warnings.most_common(5):
        print(f"  {count} x WARNING {message}")
    for message, count in Counter(scan.bare).most_common(5):
        print(f"  {count} x bare: {message[:180]}")
    minutes = f"{out['minutes']:.1f}".removesuffix(".0")
    print(
        f"soak_minutes={minutes} rss_growth_mb={end.rss_mb - start.rss_mb:.0f} "
        f"fd_growth={end.fds - start.fds} udp_growth={end.udp - start.udp} "
        f"chat_p99_ms={percentile(tally.chat_delays, 99) * 1000:.0f} lost={c['lost']} "
        f"errors={error_count}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--report-every", type=float, default=3.0, metavar="MINUTES")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--viewers", type=int, default=20, help="viewers coming and going")
    parser.add_argument("--chatters", type=int, default=50)
    parser.add_argument("--chat-rate", type=float, default=20.0, help="messages/s, all together")
    parser.add_argument("--question-rate", type=float, default=1.0, help="questions/s")
    parser.add_argument(
        "--switch-at", type=float, default=0.5, help="share of the run when session one ends"
    )
    parser.add_argument(
        "--settle", type=float, default=45.0, help="at most this long (s) for the idle counts"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (log, database)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dais-soak-"))
    log = workdir / "server.log"
    pg_name = ""
    server: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        from app.migrate import upgrade

        if args.database == "postgresql":
            pg_name = f"dais_soak_{os.getpid()}_{secrets.token_hex(3)}"
            asyncio.run(pg_admin(f'CREATE DATABASE "{pg_name}"'))
            database_url = f"{PG_SERVER}/{pg_name}"
        else:
            database_url = f"sqlite+aiosqlite:///{workdir / 'soak.db'}"
        upgrade(database_url)
        world = asyncio.run(make_world(database_url, args.chatters, max(3 * args.viewers, 30)))
        port = free_port()
        env = os.environ | {
            "DAIS_DATABASE_URL": database_url,
            "DAIS_DATA_DIR": str(workdir),
            "DAIS_BASE_URL": f"http://127.0.0.1:{port}",
            "DAIS_SECRET_KEY": "soak",
            "DAIS_LIVE_RATE_LIMITS": json.dumps({"chat": [20, 120], "question": [10, 30]}),
            "DAIS_THROTTLES": json.dumps({"join-client": [1_000_000, 60.0]}),
        }
        server = start_server(port, env, log)
        print(
            f"Dais pid {server.pid} on 127.0.0.1:{port} ({args.database}); {args.minutes:g} min: "
            f"{args.chatters} chatters at {args.chat_rate:g} messages/s and "
            f"{args.question_rate:g} question/s, {args.viewers} viewers; load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
        run, out = asyncio.run(_main(args, port, world, server.pid, database_url, workdir))
        summary(args, run, out, log)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", flush=True)
    except Exception as error:
        print(f"\nthe soak failed: {error!r}", flush=True)
        print(f"server log: {len(scan_log(log).errors)} ERROR/Traceback lines; its last lines:")
        with contextlib.suppress(OSError):
            for line in log.read_text(errors="replace").splitlines()[-15:]:
                print(f"  {line[:200]}")
        sys.exit(1)
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if pg_name:
            with contextlib.suppress(Exception):
                asyncio.run(pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _main(
    args: argparse.Namespace,
    port: int,
    world: dict[str, Any],
    pid: int,
    database_url: str,
    workdir: Path,
) -> tuple[Run, dict[str, Any]]:
    from app.db import make_engine

    engine = make_engine(database_url)
    try:
        run = Run(args, port, world, pid, engine, workdir)
        return run, await run.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
