"""Handler registry and the guard every action passes: check the permission and the rate limit,
then hand the action to its room's writer (chat/writer.py), which runs it with others in one
transaction, commits, acknowledges, then broadcasts. Signals and reads are answered here.

Domain errors become error frames here and only here (`error_frame`, `answer_error`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel
from pydantic_core import to_json
from sqlalchemy import Executable, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import Base
from app.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    RateLimited,
    Unauthorized,
)
from chat.batch_rows import BatchRows
from chat.bus import Bus, Envelope
from chat.connection import Connection
from chat.limits import RateLimits, Refusal
from chat.models import Room, RoomEvent
from chat.protocol import (
    CLOSE_POLICY,
    CLOSE_REASON_ABUSE,
    Action,
    Error,
    Event,
    JoinResult,
    RequestId,
    RoomJoin,
    parse_action,
    request_id_of,
)
from chat.roles import (
    ALL,
    CHAIR_ROLES,
    EVERYONE,
    PRESENTER_ROLES,
    PRESENTERS,
    STAFF,
    STAFF_ROLES,
    Role,
    person,
)
from chat.room_cache import (
    EventSettings,
    RoomCache,
    RoomSettings,
    Sanctions,
    SessionSettings,
    forget_room,
)
from chat.rooms import Rooms
from chat.service import record_audit

log = logging.getLogger("dais.chat")

# The audiences are spelled in chat/roles.py; handlers import them from here with the guard.
__all__ = ["ALL", "PRESENTERS", "STAFF", "Context", "LiveRouter", "Permission", "person"]


class LiveGateway(Protocol):
    """What the guard and the handlers use of the gateway (`chat.gateway.Gateway` is one): named
    here so that neither needs the gateway module, which imports them to register the handlers."""

    @property
    def handlers(self) -> Mapping[str, Handler]: ...

    @property
    def rooms(self) -> Rooms: ...

    @property
    def bus(self) -> Bus: ...

    @property
    def limits(self) -> RateLimits: ...

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    # What every action re-reads (settings, sanctions), kept per room: see chat/room_cache.py.
    @property
    def cache(self) -> RoomCache: ...

    # The application's state: long-lived things built in the lifespan (the stage hosts).
    @property
    def state(self) -> Any: ...

    async def join(self, conn: Connection, action: RoomJoin) -> None: ...

    def submit(self, conn: Connection, handler: Handler, action: Action) -> asyncio.Future[None]:
        """Queue a room action on its room's writer (`room.busy` when the room is full); the
        future resolves once the writer has answered it."""


# A context is typed by the gateway it was made by; handlers name `Context` and see a
# `LiveGateway`'s worth of it.
G = TypeVar("G", bound=LiveGateway)


class Permission:
    """Who may send an action: a set of room roles. Anything above `attend` is audited."""

    attend = EVERYONE
    present = PRESENTER_ROLES
    moderate = STAFF_ROLES
    chair = CHAIR_ROLES


class OnSocket:
    """Who a handler acts for: the joined socket's person and session."""

    conn: Connection

    @property
    def person_id(self) -> str:
        return self.conn.person_id

    @property
    def session_id(self) -> str:
        return self.conn.session_id


@dataclass
class Context(OnSocket, Generic[G]):
    """What a handler works with: the socket, a database session, and the room's, session's and
    event's settings and the room's sanctions as kept (chat/room_cache.py). A handler that
    changes the room's own settings loads its row (`room_row`) and says so (`room_changed`)."""

    gateway: G
    conn: Connection
    db: AsyncSession
    room: RoomSettings
    session: SessionSettings
    event: EventSettings
    sanctions: Sanctions
    # What goes out once the batch commits, in order: envelopes, and room events that get their
    # seq when the batch is numbered (`Recorded`).
    published: list[Envelope | Recorded] = field(default_factory=list)
    audit_target: str | None = None
    audit_detail: str | None = None
    # Rows added (`add_row`) and written with the batch's others (chat/batch_rows.py).
    rows: BatchRows = field(default_factory=BatchRows)

    @property
    def staff(self) -> bool:
        return self.conn.staff

    def add_row(self, model: type[Base], values: dict[str, Any]) -> None:
        """Insert a row that nothing later in the batch reads back (a message, a question),
        with the batch's others of its table in one statement."""
        self.rows.add(model, values)

    async def execute(self, statement: Executable, params: dict[str, Any] | None = None) -> Any:
        """Run a Core statement in the batch's transaction, without the ORM's unit of work (no
        autoflush, no objects kept in step): for the room's busiest actions."""
        return await (await self.db.connection()).execute(statement, params)

    async def write_batch(self) -> None:
        """Write the rows the batch's earlier actions added, before a read that must see them
        (a handler registered with `sees_batch=False` that sometimes needs them)."""
        await self.rows.write(self.db)

    async def room_row(self) -> Room:
        """The room's row, read now in this transaction, to change its settings."""
        room = await self.db.get(Room, self.session_id, populate_existing=True)
        if room is None:
            raise NotFound("session.not_found", "This session no longer exists.")
        return room

    def room_changed(self) -> None:
        """The room's lock, slow mode or pinned question changed: forgotten as sanctions are."""
        self.published.insert(0, forget_room(self.session_id))

    async def record(
        self, event: Event, *, audience: str = ALL, subject_id: str | None = None
    ) -> None:
        """A room event: numbered with the rest of its batch, stored for replay and broadcast
        once the batch commits (chat/writer.py)."""
        self.published.append(Recorded(event, audience, subject_id))

    def signal(self, event: Event, *, audience: str = ALL) -> None:
        """Broadcast after the commit without a seq or storage (reactions, stage signals)."""
        frame = event.model_dump_json()
        self.published.append(Envelope("frame", self.session_id, audience, None, frame))

    def sanctions_changed(self) -> None:
        """Someone was muted, unmuted or removed: every process forgets the room's sanctions
        once this commits (this one before the next action of the room). First on the bus, so
        a process has forgotten before it delivers what the change broadcasts."""
        self.published.insert(0, forget_room(self.session_id))

    def kick(self, person_id: str, reason: str = "room.removed") -> None:
        """Close the person's sockets in this room, in every process, after the commit."""
        self.published.append(Envelope("kick", self.session_id, person(person_id), None, reason))

    async def withdraw(self, subject_id: str) -> None:
        """Leave earlier events about `subject_id` out of replay, and forget their text."""
        await self.db.execute(
            update(RoomEvent)
            .where(RoomEvent.session_id == self.session_id, RoomEvent.subject_id == subject_id)
            .values(withdrawn=True, frame="")
        )


@dataclass(slots=True)
class Recorded:
    """A room event a handler recorded, waiting for its seq; `envelope` once numbered."""

    event: Event
    audience: str
    subject_id: str | None
    envelope: Envelope | None = None


@dataclass
class ReadContext(OnSocket, Generic[G]):
    """What a read handler works with: the joined socket and a database session of its own. No
    writer, no transaction to commit: a read changes nothing."""

    gateway: G
    conn: Connection
    db: AsyncSession


@dataclass
class SignalContext(OnSocket, Generic[G]):
    """What a signal handler works with: the joined socket, and what to broadcast once it has
    answered. No database session and no room writer: signals carry no sequence number, so they
    need not wait behind the room's ordered events, nor those behind them."""

    gateway: G
    conn: Connection
    published: list[Envelope] = field(default_factory=list)


Result = BaseModel | dict[str, Any] | None
HandlerFn = Callable[[Any, Any], Awaitable[Result]]


@dataclass(frozen=True)
class Handler:
    name: str
    model: type[Action]
    fn: HandlerFn
    permission: frozenset[Role]
    rate: str | None
    # A signal (WebRTC signalling) runs beside the room's ordered actions: see `SignalContext`.
    signal: bool = False
    # A read (older history) changes nothing: answered at once, see `ReadContext`.
    read: bool = False
    # An action that records no room event and acts outside the database (the stage's
    # controls, on the media server) needs no place in the room's order: it runs beside the
    # writer, in a transaction of its own (for its audit entry), so a call to a stage hosted in
    # another process never holds up the room, and no other action's failure can run it twice.
    ordered: bool = True
    # Whether the handler reads rows that earlier actions of its batch added (`add_row`): they
    # are written before it runs. A handler registered with False reads only what earlier
    # batches committed (it may still call `Context.write_batch` when it needs more).
    sees_batch: bool = True

    @property
    def audited(self) -> bool:
        return self.permission != Permission.attend


# Called as a socket joins, before its join result is sent: may fill fields of the result.
JoinHook = Callable[[LiveGateway, Connection, JoinResult], Awaitable[None]]
# A hook as a module writes it: it may name the concrete gateway it is given.
H = TypeVar("H", bound=Callable[..., Awaitable[None]])


class LiveRouter:
    """Handlers of one module, registered by action type; `include` composes modules."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.join_hooks: list[JoinHook] = []

    def on_join(self, hook: H) -> H:
        self.join_hooks.append(hook)
        return hook

    def action(
        self,
        model: type[Action],
        *,
        permission: frozenset[Role] = Permission.attend,
        rate: str | None = None,
        ordered: bool = True,
        sees_batch: bool = True,
    ) -> Callable[[HandlerFn], HandlerFn]:
        return self._register(model, permission, rate, ordered=ordered, sees_batch=sees_batch)

    def signal(self, model: type[Action], *, rate: str) -> Callable[[HandlerFn], HandlerFn]:
        """Register a signal: anyone in the room may send it (the handler refuses what it must),
        rate-limited, answered without the room's writer or a database transaction."""
        return self._register(model, Permission.attend, rate, signal=True)

    def read(self, model: type[Action], *, rate: str) -> Callable[[HandlerFn], HandlerFn]:
        """Register a read: anyone in the room may send it (the handler refuses what it must),
        rate-limited, answered at once from its own database session."""
        return self._register(model, Permission.attend, rate, read=True)

    def _register(
        self, model: type[Action], permission: frozenset[Role], rate: str | None, **kind: bool
    ) -> Callable[[HandlerFn], HandlerFn]:
        type_ = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]

        def register(fn: HandlerFn) -> HandlerFn:
            if type_ in self.handlers:
                raise ValueError(f"two handlers for {type_}")
            self.handlers[type_] = Handler(type_, model, fn, permission, rate, **kind)
            return fn

        return register

    def include(self, other: LiveRouter) -> None:
        for type_, handler in other.handlers.items():
            if type_ in self.handlers:
                raise ValueError(f"two handlers for {type_}")
            self.handlers[type_] = handler
        self.join_hooks += other.join_hooks


class RoomBusy(DomainError):
    """The room's writer holds as many actions as it takes: send again after `retry_after_ms`."""

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__("room.busy", "The room is very busy: this is sent again in a moment.")
        self.retry_after_ms = retry_after_ms


def error_frame(error: DomainError, request_id: RequestId | None) -> str:
    return Error(
        id=request_id,
        code=error.code,
        message=error.message,
        field=error.field,
        retry_after_ms=error.retry_after_ms if isinstance(error, RoomBusy) else None,
    ).model_dump_json(exclude=None if isinstance(error, RoomBusy) else {"retry_after_ms"})


def answer_error(conn: Connection, error: DomainError, request_id: RequestId | None) -> None:
    """Answer an action with its error; a refused join, or a removed person, is also closed."""
    conn.reply(error_frame(error, request_id))
    refused = isinstance(error, Unauthorized | Forbidden | NotFound)
    if (refused and not conn.joined) or error.code == "room.removed":
        conn.close(CLOSE_POLICY, error.code, flush=True)


def ok_frame(request_id: RequestId, result: str) -> str:
    """An `ok` reply around an already serialized result (a stored one, for a repeated key)."""
    return f'{{"type":"ok","id":{json.dumps(request_id)},"result":{result}}}'


def result_json(value: Result) -> str:
    """An action's result as the JSON of its `ok` reply (as pydantic writes it)."""
    if value is None:
        return "{}"
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    return to_json(value).decode()


# A socket's room actions that may wait in its room's writer at once (see `dispatch`).
IN_FLIGHT = 4


async def _answered(waiting: deque[asyncio.Future[None]]) -> None:
    """Until the socket's room actions sent before are all answered."""
    while waiting:
        await asyncio.shield(waiting[0])
        waiting.popleft()


async def dispatch(
    gateway: LiveGateway,
    conn: Connection,
    text: str,
    waiting: deque[asyncio.Future[None]] | None = None,
) -> None:
    """Handle one client frame: exactly one reply (`ok` or `error`) goes back, unless the
    socket is closed meanwhile, and a socket's replies go back in the order of its frames.

    A room action is answered by its room's writer, after its batch commits. Up to `IN_FLIGHT`
    of a socket's room actions wait in the writer at once (`waiting`, oldest first: the writer
    answers them in order); anything else the socket sends (an error to answer, a signal, a
    read) waits until they are answered. Without `waiting`, each room action is awaited."""
    one_at_a_time = waiting is None
    waiting = deque() if waiting is None else waiting
    while waiting and waiting[0].done():
        waiting.popleft()
    request_id: RequestId | None = None
    try:
        try:
            action = parse_action(text)
        except Invalid:
            request_id = request_id_of(text)
            if conn.joined:
                _refused(gateway, conn)
            raise
        request_id = action.id
        if not conn.joined or isinstance(action, RoomJoin):
            await _answered(waiting)
        if not conn.joined:
            if not isinstance(action, RoomJoin):
                raise Unauthorized("auth.required", "Join the room first.")
            await gateway.join(conn, action)
            return
        if isinstance(action, RoomJoin):
            raise Conflict("room.already_joined", "This socket has joined the room already.")
        handler = gateway.handlers.get(action.type)
        if handler is None:
            _refused(gateway, conn)
            raise Invalid("request.unknown_type", "There is no such action.", field="type")
        if conn.role not in handler.permission:
            # Counted before the writer and the database: a flood of refused actions past its
            # limit costs neither, and never delays what others do in the room. Within the
            # limit it goes on to the writer, which audits the refusal.
            _refused(gateway, conn)
        elif handler.rate and not gateway.limits.take(
            handler.rate, conn.session_id, conn.person_id
        ):
            raise RateLimited("rate_limited", "Slow down a little.")
        if not handler.ordered or handler.signal or handler.read:
            await _answered(waiting)
        if handler.signal:
            await _signal(gateway, conn, handler, action)
        elif handler.read:
            await _read(gateway, conn, handler, action)
        elif not handler.ordered:
            await _apart(gateway, conn, handler, action)
        else:
            # Answered by the writer once its batch commits, in the order queued, so the
            # socket's replies keep the order of its frames; if it closes meanwhile, the action
            # is applied all the same (chat/writer.py).
            waiting.append(gateway.submit(conn, handler, action))
            if one_at_a_time:
                await _answered(waiting)
            elif len(waiting) >= IN_FLIGHT:
                await asyncio.shield(waiting[0])
    except DomainError as error:
        await _answered(waiting)
        answer_error(conn, error, request_id)
    except Exception:
        log.exception("live action failed")
        await _answered(waiting)
        conn.reply(error_frame(DomainError("server.error", "Something went wrong."), request_id))


async def _signal(gateway: LiveGateway, conn: Connection, handler: Handler, action: Action) -> None:
    """A signal: run, answered, then its broadcasts (stage changes) published."""
    if conn.closing is not None:
        return
    ctx = SignalContext(gateway, conn)
    # The media work itself goes one negotiation at a time (streaming/local_media.py's LocalMedia),
    # so a burst of them leaves the loop to the rooms; a call relayed to another process holds
    # nothing here while it waits.
    result = await handler.fn(ctx, action)
    if conn.closing is not None:
        return  # closed by the server meanwhile (revoked, removed): its close code says why
    conn.reply(ok_frame(action.id, result_json(result)))
    for envelope in ctx.published:
        await gateway.bus.publish(envelope)


async def _apart(gateway: LiveGateway, conn: Connection, handler: Handler, action: Action) -> None:
    """An action outside the room's order (`Handler.ordered`): checked, run and audited in a
    transaction of its own, committed, answered, then its broadcasts published."""
    async with gateway.sessionmaker() as db:
        facts = await gateway.cache.facts(db, conn.session_id)
        ctx = Context(gateway, conn, db, facts.room, facts.session, facts.event, facts.sanctions)
        if facts.sanctions.is_removed(conn.person_id):
            raise Forbidden("room.removed", "You have been removed from this room.")
        if conn.role not in handler.permission:
            await audit(db, ctx, handler, action, outcome="forbidden")
            await db.commit()
            raise Forbidden("auth.forbidden", "You may not do this here.")
        result = await handler.fn(ctx, action)
        if handler.audited:
            await audit(db, ctx, handler, action, outcome="done")
        await ctx.rows.write(db)
        await db.commit()
    conn.reply(ok_frame(action.id, result_json(result)))
    for envelope in ctx.published:
        assert isinstance(envelope, Envelope), "an action outside the room's order records nothing"
        await gateway.bus.publish(envelope)


async def _read(gateway: LiveGateway, conn: Connection, handler: Handler, action: Action) -> None:
    """A read: run in a database session of its own and answered."""
    async with gateway.sessionmaker() as db:
        result = await handler.fn(ReadContext(gateway, conn, db), action)
    conn.reply(ok_frame(action.id, result_json(result)))


def _refused(gateway: LiveGateway, conn: Connection) -> None:
    """Count a refused action: past the `refused` rate limit it is answered `rate_limited` (and
    not audited); a socket that keeps on after that is closed with 1008 `abuse.refused`."""
    refusal = gateway.limits.refuse(conn.session_id, conn.person_id)
    if refusal is Refusal.answered:
        return
    if refusal is Refusal.abusive:
        log.info("closing a socket that keeps sending refused actions")
        conn.close(CLOSE_POLICY, CLOSE_REASON_ABUSE, flush=True)
    raise RateLimited("rate_limited", "Too many refused actions; slow down.")


_TARGETS = ("question_id", "message_id", "person_id", "poll_id")


async def audit(
    db: AsyncSession, ctx: Context, handler: Handler, action: Action, *, outcome: str
) -> None:
    """Write a moderation action (done or refused) to the audit log."""
    target = ctx.audit_target or next(
        (getattr(action, name) for name in _TARGETS if getattr(action, name, None)), None
    )
    await record_audit(
        db,
        # A refusal may fold into an entry written earlier in its batch: that one is written now.
        rows=ctx.rows if outcome == "done" else None,
        event_id=ctx.event.id,
        session_id=ctx.session.id,
        actor_id=ctx.person_id,
        actor_role=ctx.conn.role.value,
        action=handler.name,
        target_id=target,
        detail=ctx.audit_detail,
        outcome=outcome,
    )
