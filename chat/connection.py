"""One browser tab's socket: who is on it, and how frames reach it without anyone waiting.

Under uvicorn (`chat/wire.py` finds the transport) every frame for the socket, replies and pushed
events alike, is written as ready-made bytes straight to its transport, in order; when more than
the socket's byte budget is still unsent, the reader is too slow and is dropped (1013). Frames
are corked for a few milliseconds (`Cork`) and go out together: one system call per socket for
whatever a busy room broadcast meanwhile, not one per frame. On loopback a send costs tens of
microseconds of the server's CPU, so a room of 60 sockets at a thousand events a second would
spend more than a core on sends alone. Elsewhere
frames go to a bounded outbox drained through ASGI by one sender task, dropped when full. Either
way broadcasting never awaits a socket, so a slow reader delays nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from starlette.websockets import WebSocket

from app.db import new_id
from chat import wire
from chat.protocol import CLOSE_TRY_AGAIN
from chat.roles import PRESENTER_ROLES, STAFF_ROLES, Role, audiences_of

log = logging.getLogger("dais.chat")

# Spelled in chat/roles.py; importable from here too, as modules of the stage have them.
__all__ = ["PRESENTER_ROLES", "STAFF_ROLES", "Connection"]

CloseHook = Callable[["Connection"], Awaitable[None]]


class Cork:
    """Holds back the frames of directly written sockets and then writes each socket's together;
    one per process, given to every socket.

    Frames wait `seconds` at least. Writes are also budgeted: each costs the server's CPU
    whatever it carries (on loopback a write that wakes the reader costs ~35 us here), so when
    more sockets wait than the budget of `writes_per_s` has left, they wait longer, up to
    `longest`, and a busy room's frames go out in fewer, fuller writes. A quiet room never
    waits more than `seconds`, and neither does a reply: a socket with one (`hurry`) is written
    after `seconds` whatever the budget, with what was pushed to it meanwhile."""

    def __init__(
        self, seconds: float, *, writes_per_s: float = 3000.0, longest: float = 0.025
    ) -> None:
        self.seconds = seconds
        self.writes_per_s = writes_per_s
        self.longest = max(longest, seconds)
        self._waiting: list[Connection] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        # The budget: writes that may go out now, refilled at `writes_per_s` up to a longest
        # wait's worth.
        self._tokens = self._capacity = writes_per_s * self.longest
        self._stamp = 0.0
        self._since = 0.0  # when the first of the waiting frames was held
        self._hurried: list[Connection] = []
        self._hurry_timer: asyncio.TimerHandle | asyncio.Handle | None = None

    def hold(self, conn: Connection) -> None:
        """`conn` has frames waiting (called on its first since it was last written)."""
        self._waiting.append(conn)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._since = loop.time()
            self._timer = (
                loop.call_later(self.seconds, self.flush)
                if self.seconds > 0
                else loop.call_soon(self.flush)
            )

    def hurry(self, conn: Connection) -> None:
        """`conn` has a reply waiting: written after `seconds`, budget or not."""
        self._hurried.append(conn)
        if self._hurry_timer is None:
            loop = asyncio.get_running_loop()
            self._hurry_timer = (
                loop.call_later(self.seconds, self._flush_hurried)
                if self.seconds > 0
                else loop.call_soon(self._flush_hurried)
            )

    def _flush_hurried(self) -> None:
        self._hurry_timer = None
        hurried, self._hurried = self._hurried, []
        for conn in hurried:
            if conn.uncork():
                self._tokens -= 1  # spent from the budget all the same

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self.writes_per_s)
        self._stamp = now
        short = len(self._waiting) - self._tokens
        waited = now - self._since
        if short > 0 and waited < self.longest:
            # Over budget: wait until the budget covers them (or the longest wait is up).
            delay = min(short / self.writes_per_s, self.longest - waited)
            self._timer = loop.call_later(delay, self.flush)
            return
        self._timer = None
        waiting, self._waiting = self._waiting, []
        written = sum(conn.uncork() for conn in waiting)
        self._tokens = max(self._tokens - written, -self._capacity)


# Unsent bytes a directly written socket may hold per frame of its queue limit (256 frames:
# 256 KiB), on top of the largest reply (a join state can be bigger than that by itself).
BYTES_PER_QUEUED_FRAME = 1024


class Connection:
    def __init__(
        self, websocket: WebSocket, *, session_id: str, limit: int, cork: Cork | None = None
    ) -> None:
        self.id = new_id()
        self.websocket = websocket
        self.session_id = session_id
        self.limit = limit
        self.person_id = ""
        # The sha256 of the access token the socket joined with: signing out closes it.
        self.sign_in = ""
        self.name = ""
        self.role = Role.attendee
        self.audiences: frozenset[str] = frozenset()
        self.joined = False
        # Set when the server decides to close: (code, reason); `flush` sends what is queued first.
        self.closing: tuple[int, str] | None = None
        self._flush = False
        self._outbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        # Frames are written straight here when set (see chat/wire.py); else through the outbox.
        self._transport = wire.transport_of(websocket)
        self._base_bytes = self._max_bytes = limit * BYTES_PER_QUEUED_FRAME
        self.written = 0  # frames written to the transport directly
        # Frames held back by the cork, written together by `uncork` (direct writes only).
        self._cork = cork or Cork(0.0)
        self._corked: list[bytes] = []
        self._corked_bytes = 0
        # What the transport had not yet handed to the kernel after the last write.
        self._unsent = 0
        # While joining, room events wait here until the join's own state has been sent.
        self._held: list[tuple[int | None, str, bytes | None]] | None = None
        # Room events up to this seq were in the join state or replay; later copies are dropped.
        self._floor = -1
        self._close_hooks: list[CloseHook] = []
        # Set once the server or the peer ends this socket; the gateway then stops both loops.
        self.stopped = asyncio.Event()
        # True while the gateway's receiver handles one of the socket's frames: a close then
        # lets it finish rather than cut it off inside its transaction (chat/gateway.py).
        self.acting = False

    @property
    def staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def flushing(self) -> bool:
        return self._flush

    @property
    def direct(self) -> bool:
        """True when frames are written to the transport directly rather than through ASGI."""
        return self._transport is not None

    def identify(self, *, person_id: str, name: str, role: Role, sign_in: str = "") -> None:
        self.person_id, self.name, self.role, self.sign_in = person_id, name, role, sign_in
        self.audiences = audiences_of(person_id, role)
        self._held = []

    def push(self, frame: str, seq: int | None = None, data: bytes | None = None) -> None:
        """Send a pushed event (called for every socket of a room on each broadcast); `data` is
        `frame` already encoded by `wire.text_frame`, once for all sockets."""
        if self.closing is not None:
            return
        if self._held is not None:
            if len(self._held) >= self.limit:
                self.close(CLOSE_TRY_AGAIN, "too.slow")
            else:
                self._held.append((seq, frame, data))
            return
        if seq is not None and seq <= self._floor:
            return
        self._enqueue(frame, data)

    def push_many(
        self, frames: list[tuple[str, int | None, bytes]], data: bytes, lowest: int | None
    ) -> None:
        """Send several pushed events in order (a batch's broadcasts): `data` is their encoded
        frames joined, `lowest` the smallest of their seqs. As `push` for each, in one go."""
        if self.closing is not None:
            return
        if (
            self._held is not None
            or self._transport is None
            or (lowest is not None and lowest <= self._floor)
        ):
            for frame, seq, one in frames:
                self.push(frame, seq, one)
            return
        self._enqueue(frames[0][0], data, len(frames))

    def reply(self, frame: str) -> None:
        """Send a reply (or replayed event) ahead of anything held during the join."""
        if self.closing is None or self._flush:
            if self._transport is not None:
                data = wire.text_frame(frame)
                self._max_bytes = max(self._max_bytes, self._base_bytes + len(data))
                self._enqueue(frame, data)
                if self._corked:
                    self._cork.hurry(self)
            else:
                self._enqueue(frame, None)

    def release(self, floor: int) -> None:
        """The join state up to `floor` is sent: let held and later events through."""
        held, self._held, self._floor = self._held or [], None, floor
        self.joined = True
        for seq, frame, data in held:
            self.push(frame, seq, data)

    def _enqueue(self, frame: str, data: bytes | None, frames: int = 1) -> None:
        """Queue `frame` (or, written directly, `frames` whole frames encoded in `data`)."""
        transport = self._transport
        if transport is not None:
            # Called for every socket of a room on each broadcast: only what must be done per
            # frame is done here; the transport is looked at when the frames are written.
            if data is None:
                data = wire.text_frame(frame)
            corked = self._corked
            if self._unsent + self._corked_bytes + len(data) > self._max_bytes:
                self._unsent = transport.get_write_buffer_size()
                if self._unsent + self._corked_bytes + len(data) > self._max_bytes:
                    self.close(CLOSE_TRY_AGAIN, "too.slow")
                    return
            if not corked and self.closing is None:
                self._cork.hold(self)
            corked.append(data)
            self._corked_bytes += len(data)
            self.written += frames
            if self.closing is not None:
                self.uncork()  # a closing socket's last words go before its close frame
            return
        if len(self._outbox) >= self.limit:
            self.close(CLOSE_TRY_AGAIN, "too.slow")
            return
        self._outbox.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def uncork(self) -> bool:
        """Write the frames held back, as one write of whole frames: uvicorn's own pings and
        pongs (one write each) can only fall between frames, never inside one. True when
        something was written."""
        corked, self._corked, self._corked_bytes = self._corked, [], 0
        transport = self._transport
        if not corked or transport is None:
            return False
        if transport.is_closing():
            self.gone()  # the peer went away: nothing more can be sent
            return False
        transport.write(corked[0] if len(corked) == 1 else b"".join(corked))
        self._unsent = transport.get_write_buffer_size()
        return True

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Stop this socket: the sender ends (after sending what is queued, with `flush`) and the
        gateway sends the close frame."""
        if self.closing is not None:
            return
        self.closing, self._flush = (code, reason), flush
        self.stopped.set()
        # Frames already pushed go before the close frame the gateway sends, as when each was
        # written at once (a gone transport takes nothing).
        self.uncork()
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
        if self._transport is not None:
            # Frames were written as they came; only the close is left, to the gateway.
            await self.stopped.wait()
            return
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
