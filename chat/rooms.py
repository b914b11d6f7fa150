"""The rooms this process serves: their sockets, fan-out of bus envelopes, and watching counts.

Built once in the lifespan. Every envelope arriving from the bus (from this process or another)
is pushed to the matching local sockets as the one string serialized by its publisher, encoded
once into websocket frame bytes for the sockets written directly (`chat/wire.py`). Each
process announces how many people it holds per room over the bus; the sum is `watching`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter

from app.db import new_id
from chat import wire
from chat.bus import Bus, Envelope
from chat.connection import Connection
from chat.protocol import CLOSE_POLICY, ROLE_CHANGED, Event, WatchingChanged
from chat.roles import ALL, Role

log = logging.getLogger("dais.chat")

ANNOUNCE_EVERY = 1.0  # seconds between watching announcements of rooms that changed
REFRESH_EVERY = 10.0  # every room's count is re-announced this often
FORGET_AFTER = 35.0  # a process not heard from for this long no longer counts


class LiveRoom:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.connections: dict[str, Connection] = {}
        self.show_people = False
        self.people: Counter[str] = Counter()
        self.names: dict[str, str] = {}
        self.changed = False
        # process id -> (count, names or None, when heard)
        self.counts: dict[str, tuple[int, list[str] | None, float]] = {}
        self.last_pushed: tuple[int, list[str] | None] | None = None


class Rooms:
    def __init__(self) -> None:
        # Before any socket is served: fail loudly if uvicorn moved what direct writes rely on.
        wire.self_check()
        self.process_id = new_id()
        self._rooms: dict[str, LiveRoom] = {}
        self._connections: dict[str, Connection] = {}

    def room(self, session_id: str) -> LiveRoom:
        room = self._rooms.get(session_id)
        if room is None:
            room = self._rooms[session_id] = LiveRoom(session_id)
        return room

    def enter(self, conn: Connection, *, show_people: bool) -> None:
        room = self.room(conn.session_id)
        room.show_people = show_people
        room.connections[conn.id] = conn
        self._connections[conn.id] = conn
        room.people[conn.person_id] += 1
        room.names[conn.person_id] = conn.name
        room.changed = True

    def leave(self, conn: Connection) -> None:
        if self._connections.pop(conn.id, None) is None:
            return
        room = self.room(conn.session_id)
        room.connections.pop(conn.id, None)
        room.people[conn.person_id] -= 1
        if room.people[conn.person_id] <= 0:
            del room.people[conn.person_id]
            room.names.pop(conn.person_id, None)
        room.changed = True

    def connection(self, connection_id: str) -> Connection | None:
        return self._connections.get(connection_id)

    def send(self, connection_id: str, message: Event | str) -> bool:
        """Push one frame to one local socket; False when it is not (or no longer) here."""
        conn = self._connections.get(connection_id)
        if conn is None:
            return False
        conn.push(message if isinstance(message, str) else message.model_dump_json())
        return True

    # -- arriving from the bus ----------------------------------------------------------------

    def deliver_many(self, envelopes: list[Envelope]) -> None:
        """Envelopes in order; a run of one room's frames for everyone (a batch's broadcasts)
        is handed to each socket at once."""
        run: list[Envelope] = []
        for envelope in envelopes:
            if envelope.kind == "frame" and envelope.audience == ALL:
                if run and run[0].room != envelope.room:
                    self._deliver_run(run)
                    run = []
                run.append(envelope)
                continue
            if run:
                self._deliver_run(run)
                run = []
            self.deliver(envelope)
        if run:
            self._deliver_run(run)

    def _deliver_run(self, run: list[Envelope]) -> None:
        if len(run) == 1:
            self.deliver(run[0])
            return
        room = self._rooms.get(run[0].room)
        if room is None or not room.connections:
            return
        frames = [(e.body, e.seq, wire.text_frame(e.body)) for e in run]
        data = b"".join(one for _, _, one in frames)
        lowest = min((seq for _, seq, _ in frames if seq is not None), default=None)
        for conn in list(room.connections.values()):
            conn.push_many(frames, data, lowest)

    def deliver(self, envelope: Envelope) -> None:
        if envelope.kind == "watching":
            self._heard(envelope)
            return
        if envelope.kind == "access":
            self._withdraw(envelope.audience, envelope.body)
            return
        room = self._rooms.get(envelope.room)
        if room is None or not room.connections:
            return
        connections = list(room.connections.values())
        if envelope.kind == "kick":
            for conn in connections:
                if envelope.audience in conn.audiences:
                    conn.close(CLOSE_POLICY, envelope.body)
            return
        if envelope.kind == "roles":
            self._recheck_roles(connections, json.loads(envelope.body))
            return
        frame, seq = envelope.body, envelope.seq
        data = wire.text_frame(frame)
        if envelope.audience == ALL:
            for conn in connections:
                conn.push(frame, seq, data)
            return
        audiences = frozenset(envelope.audience.split())
        for conn in connections:
            if not audiences.isdisjoint(conn.audiences):
                conn.push(frame, seq, data)

    def _withdraw(self, audience: str, reason: str) -> None:
        """Close every socket, in any room, of a person (`person:<id>`) or of one sign-in
        (`sign-in:<token hash>`): they were revoked or signed out."""
        kind, _, value = audience.partition(":")
        for conn in list(self._connections.values()):
            if (kind == "person" and conn.person_id == value) or (
                kind == "sign-in" and conn.sign_in == value
            ):
                conn.close(CLOSE_POLICY, reason)

    @staticmethod
    def _recheck_roles(connections: list[Connection], roles: dict[str, str]) -> None:
        """`roles` is every invited person's role in the session now: a participant's socket
        whose role differs is closed (`auth.role_changed`), so it joins again with the new one."""
        for conn in connections:
            if conn.role == Role.organiser:
                continue  # the event's organiser has no session role to change
            if roles.get(conn.person_id, Role.attendee) != conn.role:
                conn.close(CLOSE_POLICY, ROLE_CHANGED)

    # -- watching counts ----------------------------------------------------------------------

    def _local(self, room: LiveRoom) -> tuple[int, list[str] | None]:
        names = sorted(room.names.values())[:500] if room.show_people else None
        return len(room.people), names

    def local_counts(self) -> dict[str, int]:
        """People in each room on this process's own sockets (for attendance samples)."""
        return {session_id: len(room.people) for session_id, room in self._rooms.items()}

    def watching(self, session_id: str) -> tuple[int, list[str] | None]:
        """People in the room across all processes (display names only if the event allows)."""
        room = self.room(session_id)
        count, names = self._local(room)
        for process, (other, other_names, _) in room.counts.items():
            if process != self.process_id:
                count += other
                if names is not None and other_names:
                    names = sorted({*names, *other_names})[:500]
        return count, names

    def _heard(self, envelope: Envelope) -> None:
        room = self.room(envelope.room)
        data = json.loads(envelope.body)
        room.counts[data["process"]] = (data["count"], data["names"], time.monotonic())
        if not room.connections:
            return
        now = self.watching(room.session_id)
        if now != room.last_pushed:
            room.last_pushed = now
            frame = WatchingChanged(count=now[0], people=now[1]).model_dump_json()
            data = wire.text_frame(frame)
            for conn in list(room.connections.values()):
                conn.push(frame, None, data)

    async def announce_watching(self, bus: Bus) -> None:
        """Tell every process how many people this one holds in each room that changed."""
        last_refresh = time.monotonic()
        while True:
            await asyncio.sleep(ANNOUNCE_EVERY)
            now = time.monotonic()
            refresh = now - last_refresh >= REFRESH_EVERY
            if refresh:
                last_refresh = now
            for room in list(self._rooms.values()):
                room.counts = {p: c for p, c in room.counts.items() if now - c[2] < FORGET_AFTER}
                if not (room.changed or (refresh and room.people)):
                    continue
                room.changed = False
                count, names = self._local(room)
                body = json.dumps({"process": self.process_id, "count": count, "names": names})
                try:
                    await bus.publish(Envelope("watching", room.session_id, ALL, None, body))
                except Exception:
                    log.exception("could not announce watching count")
