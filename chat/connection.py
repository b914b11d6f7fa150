"""One browser tab's socket: who is on it, and its bounded outbox drained by one sender task.

Broadcasting only appends the already-serialized frame to each outbox; it never awaits a socket,
so a slow reader delays nobody. When an outbox is full the socket is dropped (1013).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket

from app.db import new_id
from chat.protocol import CLOSE_TRY_AGAIN, Role

log = logging.getLogger("dais.chat")

STAFF_ROLES = frozenset({Role.moderator, Role.chair, Role.organiser})
PRESENTER_ROLES = frozenset({Role.speaker, *STAFF_ROLES})

CloseHook = Callable[["Connection"], Awaitable[None]]


class Connection:
    def __init__(self, websocket: WebSocket, *, session_id: str, limit: int) -> None:
        self.id = new_id()
        self.websocket = websocket
        self.session_id = session_id
        self.limit = limit
        self.person_id = ""
        self.name = ""
        self.role = Role.attendee
        self.audiences: frozenset[str] = frozenset()
        self.joined = False
        # Set when the server decides to close: (code, reason); `flush` sends what is queued first.
        self.closing: tuple[int, str] | None = None
        self._flush = False
        self._outbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # While joining, room events wait here until the join's own state has been sent.
        self._held: list[tuple[int | None, str]] | None = None
        # Room events up to this seq were in the join state or replay; later copies are dropped.
        self._floor = -1
        self._close_hooks: list[CloseHook] = []
        # Set once the server or the peer ends this socket; the gateway then stops both loops.
        self.stopped = asyncio.Event()

    @property
    def staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def flushing(self) -> bool:
        return self._flush

    def identify(self, *, person_id: str, name: str, role: Role) -> None:
        self.person_id, self.name, self.role = person_id, name, role
        audiences = {"all", f"person:{person_id}"}
        if role in STAFF_ROLES:
            audiences.add("staff")
        if role in PRESENTER_ROLES:
            audiences.add("presenters")
        self.audiences = frozenset(audiences)
        self._held = []

    def push(self, frame: str, seq: int | None = None) -> None:
        """Queue a pushed event (called for every socket of a room on each broadcast)."""
        if self.closing is not None:
            return
        if self._held is not None:
            if len(self._held) >= self.limit:
                self.close(CLOSE_TRY_AGAIN, "too.slow")
            else:
                self._held.append((seq, frame))
            return
        if seq is not None and seq <= self._floor:
            return
        self._enqueue(frame)

    def reply(self, frame: str) -> None:
        """Queue a reply (or replayed event) ahead of anything held during the join."""
        if self.closing is None or self._flush:
            self._enqueue(frame)

    def release(self, floor: int) -> None:
        """The join state up to `floor` is queued: let held and later events through."""
        held, self._held, self._floor = self._held or [], None, floor
        self.joined = True
        for seq, frame in held:
            self.push(frame, seq)

    def _enqueue(self, frame: str) -> None:
        if len(self._outbox) >= self.limit:
            self.close(CLOSE_TRY_AGAIN, "too.slow")
            return
        self._outbox.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Stop this socket: the sender ends (after sending what is queued, with `flush`) and the
        gateway sends the close frame."""
        if self.closing is not None:
            return
        self.closing, self._flush = (code, reason), flush
        self.stopped.set()
        if not flush:
            self._outbox.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def gone(self) -> None:
        """The peer went away: nothing more can be sent."""
        self.close(1006, "gone")

    def on_close(self, hook: CloseHook) -> None:
        """Run `hook(connection)` once the socket has closed (e.g. to drop its peer connection)."""
        self._close_hooks.append(hook)

    async def run_close_hooks(self) -> None:
        for hook in self._close_hooks:
            try:
                await hook(self)
            except Exception:
                log.exception("close hook failed")

    async def run_sender(self) -> None:
        """The one task that writes to this socket, until it closes or the peer goes away."""
        send = self.websocket.send
        outbox = self._outbox
        loop = asyncio.get_running_loop()
        try:
            while True:
                while outbox and (self.closing is None or self._flush):
                    await send({"type": "websocket.send", "text": outbox.popleft()})
                if self.closing is not None:
                    return
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except Exception:
            # The peer went away mid-send: nothing more can be delivered.
            self.closing = (1006, "gone")
            self._outbox.clear()
            self.stopped.set()
