"""The live gateway: a socket's life from upgrade to close, the join, and what the lifespan builds.

Order on each socket: Origin checked before accept; a `room.join` (token in the frame or the
session cookie) within `live_auth_seconds`; then one receiver loop and one sender task, either
ending stops both.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.websockets import WebSocket

from app.agenda.service import get_session
from app.auth.service import hash_token, resolve_token
from app.db import utcnow
from app.deps import COOKIE
from app.errors import Forbidden, RateLimited, Unauthorized
from app.event.models import Event
from app.people.models import SessionRole
from app.people.service import purge_attendee_emails
from app.settings import Settings
from app.throttle import JOINS_PER_CLIENT, JOINS_PER_SIGN_IN, Throttles
from chat import service
from chat.attendance import Sampler
from chat.bus import Bus, Envelope, open_bus
from chat.connection import Connection, Cork
from chat.guard import Handler, LiveRouter, dispatch
from chat.limits import RateLimits
from chat.protocol import (
    CLOSE_POLICY,
    CLOSE_REASON_REVOKED,
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN,
    Action,
    JoinResult,
    Ok,
    ResyncRequired,
    RoomJoin,
    You,
    load_frame,
)
from chat.redis_link import Link, open_link
from chat.roles import ALL, person
from chat.room_cache import FORGET, RoomCache, forget_event, forget_room
from chat.rooms import Rooms
from chat.writer import Writers, count_changes

log = logging.getLogger("dais.chat")

CLOSE_GRACE_SECONDS = 5.0
# How long a closed socket's frame under way may take to finish before it is cancelled.
ACTION_GRACE_SECONDS = 10.0
WRITERS_DRAIN_SECONDS = 10.0


def live_handlers() -> LiveRouter:
    """Every module's handlers. A new module (e.g. `chat/stage.py`) is added here."""
    from chat import history, messages, moderation, polls, questions, stage

    handlers = LiveRouter()
    for module in (messages, questions, polls, moderation, stage, history):
        handlers.include(module.live)
    return handlers


def is_signal(text: str, limit: int) -> bool:
    """A WebRTC signalling frame (`media.*`), which may exceed the usual frame limit."""
    if len(text.encode()) > limit:
        return False
    data = load_frame(text)
    return data is not None and str(data.get("type", "")).startswith("media.")


class Gateway:
    def __init__(
        self,
        *,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        rooms: Rooms,
        bus: Bus,
        handlers: LiveRouter,
        throttles: Throttles,
        cache: RoomCache | None = None,
        state: Any = None,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.rooms = rooms
        self.bus = bus
        self.handlers = handlers.handlers
        self.join_hooks = handlers.join_hooks
        self.limits = RateLimits(settings.live_rate_limits)
        self.throttles = throttles
        self.cache = cache or RoomCache()
        self.attendance = Sampler(rooms, sessionmaker)
        # Frames to sockets go out together every few milliseconds (chat/connection.py).
        self.cork = Cork(settings.live_cork_seconds)
        # Each room's actions, applied in batches (chat/writer.py).
        self.writers = Writers(self, limit=settings.live_room_queue_actions)
        # The application's state, for handlers that need other long-lived objects (media).
        self.state = state

    def submit(self, conn: Connection, handler: Handler, action: Action) -> asyncio.Future[None]:
        return self.writers.submit(conn, handler, action)

    def send(self, connection_id: str, message: Any) -> bool:
        """Push one frame (an Event model or a serialized string) to one socket of this process."""
        return self.rooms.send(connection_id, message)

    # -- access changed elsewhere (HTTP), acted on by every process -----------------------------

    async def withdraw(self, *, person_id: str | None = None, sign_in: str | None = None) -> None:
        """Close every open socket of a revoked person, or of one signed-out sign-in (a token
        hash), in every room of every process, with 1008 `auth.revoked`."""
        audience = person(person_id) if person_id else f"sign-in:{sign_in}"
        await self.bus.publish(Envelope("access", "", audience, None, CLOSE_REASON_REVOKED))

    async def roles_changed(self, *, session_id: str) -> None:
        """A session's invited roles changed: sockets in its room whose role is no longer the
        one they joined with close (`auth.role_changed`) and join again with the new one."""
        async with self.sessionmaker() as db:
            rows = await db.execute(
                select(SessionRole.participant_id, SessionRole.role).where(
                    SessionRole.session_id == session_id
                )
            )
            roles = {person_id: role for person_id, role in rows}
        await self.bus.publish(Envelope("roles", session_id, ALL, None, json.dumps(roles)))

    async def settings_changed(
        self, *, session_id: str | None = None, event_id: str | None = None
    ) -> None:
        """A session's (or a whole event's) settings changed, or it was deleted: every process
        reads them again before its next action in the room (chat/room_cache.py)."""
        envelope = forget_room(session_id) if session_id else forget_event(event_id or "")
        self.cache.forget(envelope)  # here at once, whatever the bus's delay
        await self.bus.publish(envelope)

    # -- one socket ---------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket, session_id: str) -> None:
        origin = websocket.headers.get("origin", "").rstrip("/")
        if origin not in self.settings.origins:
            # Before accept: the upgrade is answered 403 and no frame is ever sent.
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        conn = Connection(
            websocket,
            session_id=session_id,
            limit=self.settings.live_queue_frames,
            cork=self.cork,
        )
        receiver = asyncio.create_task(self._receive(conn))
        sender = asyncio.create_task(conn.run_sender())
        stopped = asyncio.create_task(conn.stopped.wait())
        try:
            await asyncio.wait({receiver, sender, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if conn.closing is not None and conn.flushing and not sender.done():
                # A flushing close (a refused join) lets the queued reply go first; a dropped
                # or kicked socket's sender ends at once.
                with suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(sender), 2.0)
        finally:
            self.rooms.leave(conn)
            if conn.acting and not receiver.done():
                # The frame under way finishes first (its reply goes nowhere). Cancelled inside
                # its transaction, a chair's `session.end` could stop the stage and never record
                # it, a join's commit be cut off, and the database connection be thrown away.
                with suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(receiver), ACTION_GRACE_SECONDS)
            for task in (receiver, sender, stopped):
                task.cancel()
            await asyncio.gather(receiver, sender, stopped, return_exceptions=True)
            conn.uncork()  # whatever is held back goes before the close frame
            if conn.closing is not None and conn.closing[0] != 1006:
                code, reason = conn.closing
                # A stalled reader may never take the close frame: wait for it only a while.
                with suppress(Exception):
                    await asyncio.wait_for(websocket.close(code, reason), CLOSE_GRACE_SECONDS)
            await conn.run_close_hooks()

    async def _receive(self, conn: Connection) -> None:
        websocket = conn.websocket
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.live_auth_seconds
        limit = self.settings.live_max_frame_bytes
        signal_limit = self.settings.live_max_signal_frame_bytes
        # The socket's room actions waiting in its room's writer (chat/guard.py's dispatch).
        waiting: deque[asyncio.Future[None]] = deque()
        while conn.closing is None:
            try:
                if conn.joined:
                    message = await websocket.receive()
                else:
                    message = await asyncio.wait_for(websocket.receive(), deadline - loop.time())
            except TimeoutError:
                conn.close(CLOSE_POLICY, "auth.timeout")
                return
            if message["type"] == "websocket.disconnect":
                conn.gone()
                return
            text = message.get("text")
            data = text if text is not None else message.get("bytes") or b""
            if len(data) > limit or (
                isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit
            ):
                if not (text is not None and is_signal(text, signal_limit)):
                    conn.close(CLOSE_TOO_BIG, "frame.too_big")
                    return
            conn.acting = True
            await dispatch(self, conn, text if text is not None else "", waiting)
            conn.acting = False

    async def join(self, conn: Connection, action: RoomJoin) -> None:
        """Authenticate, check the room lets this person in, then send the room's state (or the
        missed events) before any live event."""
        token = action.token or conn.websocket.cookies.get(COOKIE)
        if not token:
            raise Unauthorized("auth.required", "Please sign in.")
        client = conn.websocket.client
        try:
            # Before anything costs the database: a join loop on one token, or from one
            # client, is refused; the socket closes 1013 and the page tries again later.
            await self.throttles.spend(JOINS_PER_SIGN_IN, hash_token(token))
            await self.throttles.spend(JOINS_PER_CLIENT, client.host if client else "unknown")
        except RateLimited:
            conn.close(CLOSE_TRY_AGAIN, "rate_limited", flush=True)
            raise
        async with self.sessionmaker() as db:
            principal = await resolve_token(db, token)
            session = await get_session(db, session_id=conn.session_id)
            event = await db.get(Event, session.event_id)
            assert event is not None
            role = service.role_in_room(principal, event=event, session_id=session.id)
            room = await service.ensure_room(db, session_id=session.id)
            await db.commit()
            sanctions = (await self.cache.facts(db, session.id)).sanctions
            if sanctions.is_removed(principal.id):
                raise Forbidden("room.removed", "You have been removed from this room.")
            conn.identify(
                person_id=principal.id,
                name=principal.display_name,
                role=role,
                sign_in=principal.token_hash,
            )
            if room.locked and not conn.staff:
                raise Forbidden("room.locked", "This room is locked.")
            muted = sanctions.is_muted(principal.id, utcnow())
        you = You(person_id=principal.id, name=principal.display_name, role=role, muted=muted)
        self.rooms.enter(conn, show_people=event.attendees_see_each_other)
        try:
            await self._send_room(conn, action, session=session, you=you)
        except BaseException:
            self.rooms.leave(conn)
            raise

    async def _send_room(
        self, conn: Connection, action: RoomJoin, *, session: Any, you: You
    ) -> None:
        watching = self.rooms.watching(session.id)[0]
        if action.last_seq is not None:
            async with self.sessionmaker() as db:
                rows = await service.missed_events(
                    db,
                    session_id=session.id,
                    after=action.last_seq,
                    window=self.settings.live_replay_events,
                )
                room = await db.get(service.Room, session.id)
                assert room is not None
            if rows is not None:
                seq = rows[-1].seq if rows else action.last_seq
                result = JoinResult(
                    seq=seq, resumed=True, you=you, room=service.room_state(room), watching=watching
                )
                await self._complete(conn, result)
                conn.reply(
                    Ok(id=action.id, result=result.model_dump(mode="json")).model_dump_json()
                )
                for row in rows:
                    if not row.withdrawn and (
                        row.audience == ALL or conn.audiences & set(row.audience.split())
                    ):
                        conn.reply(row.frame)
                conn.release(seq)
                return
            conn.reply(ResyncRequired().model_dump_json())
        async with service.consistent_read(self.sessionmaker, session_id=session.id) as db:
            result = await service.room_snapshot(
                db,
                session=session,
                you=you,
                watching=watching,
                staff=conn.staff,
                history=self.settings.live_history_messages,
            )
        await self._complete(conn, result)
        conn.reply(Ok(id=action.id, result=result.model_dump(mode="json")).model_dump_json())
        conn.release(result.seq)

    async def _complete(self, conn: Connection, result: JoinResult) -> None:
        """Let other parts (the stage) add what they hold to the join result, fresh or resumed."""
        for hook in self.join_hooks:
            await hook(self, conn, result)


async def _purge_periodically(sessionmaker: async_sessionmaker[AsyncSession], every: float) -> None:
    while True:
        try:
            now = utcnow()
            async with sessionmaker() as db:
                removed = await service.purge_expired(db, now=now)
                # Attendees' optional emails go with the event's retention too.
                removed += await purge_attendee_emails(db, now=now)
            if removed:
                log.info("retention purge removed %d live items and emails", removed)
        except Exception:
            log.exception("retention purge failed")
        await asyncio.sleep(every)


@asynccontextmanager
async def open_gateway(
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    throttles: Throttles,
    link: Link | None = None,
    state: Any = None,
) -> AsyncIterator[Gateway]:
    """The gateway with its rooms, bus and background tasks; all stopped on exit. The bus rides
    on `link`, the process's one link to the others (its own from `settings.bus_url` if none)."""
    async with AsyncExitStack() as stack:
        rooms = Rooms()
        cache = RoomCache()
        engine = sessionmaker.kw["bind"]
        listener = count_changes(engine)
        stack.callback(event.remove, engine.sync_engine, "after_cursor_execute", listener)
        if link is None:
            link = await stack.enter_async_context(open_link(settings.bus_url))
        # A lost link may have lost invalidations too.
        link.on_lost(cache.forget_all)

        def deliver(envelopes: list[Envelope]) -> None:
            start = 0
            for index, envelope in enumerate(envelopes):
                if envelope.kind == FORGET:
                    rooms.deliver_many(envelopes[start:index])
                    cache.forget(envelope)
                    start = index + 1
            rooms.deliver_many(envelopes[start:] if start else envelopes)

        bus = await stack.enter_async_context(open_bus(link, deliver))
        gateway = Gateway(
            settings=settings,
            sessionmaker=sessionmaker,
            rooms=rooms,
            bus=bus,
            handlers=live_handlers(),
            throttles=throttles,
            cache=cache,
            state=state,
        )
        tasks = [
            asyncio.create_task(rooms.announce_watching(bus), name="dais-watching"),
            asyncio.create_task(
                _purge_periodically(sessionmaker, settings.live_purge_every_seconds),
                name="dais-retention",
            ),
            asyncio.create_task(
                gateway.attendance.run(settings.live_attendance_every_seconds),
                name="dais-attendance",
            ),
        ]
        try:
            yield gateway
        finally:
            # What sockets queued is applied before the process stops.
            await gateway.writers.drain(WRITERS_DRAIN_SECONDS)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
