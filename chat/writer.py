"""A room's writer: group commit. The room's actions queue here and are applied a batch at a time,
in the order they came: one transaction (one fsync) per batch, the batch's room events numbered
together with one update of the room's counter, then the acknowledgements in order, then the
broadcasts in order. So each action is still committed, then acknowledged, then broadcast, and
the room's events keep their order and consecutive seqs; only the round trips are shared.

One writer task per room while it has work (none when idle). In front of the queue:

* **Back-pressure.** A room holding `live_room_queue_actions` actions answers new ones
  `room.busy` with a retry hint (how long the queue takes to drain at the rate it is draining).
* **Idempotency keys.** An action with a `key` that this person already had applied in this room
  is answered with the result stored then, and not applied again (`chat.models.ActionKey`); the
  same key twice in one batch is applied once. The writer remembers the keys it applied lately
  (a page resends within seconds of losing its socket), so a batch costs no lookup; a key
  applied elsewhere (another process, before a restart) is caught by the keys' primary key when
  the batch stores it, and the batch runs again with its keys looked up in the database.
* **Closing sockets.** An action queued by a socket that has since gone (closed by the browser,
  dropped as too slow) is still applied, so the page's resend finds its key; one whose socket
  the server closed for policy (removed, revoked, role changed) is not, and is counted.

A handler that fails after writing (or that left changes unflushed) cannot be undone alone
without a savepoint per action (which the sqlite3 driver cannot do without taking over all of
SQLite's transaction handling), so instead the batch is rolled back, the failed action answered,
and the others queued again at the front: they run again from the start in the next batch. The
handlers refuse before they write (votes insert with `ON CONFLICT DO NOTHING` and count the row),
so this is rare. Actions with effects outside the database (the stage's media commands) never
come here (`Handler.ordered`), so none is ever run twice this way. An action that
changes the room's settings or sanctions ends its batch, so the next one sees the change. A
conflict at commit (another process stored the same key or vote at the same moment) runs the
batch's actions again one by one.

What a batch writes costs few statements: rows nothing in the batch reads back (messages,
questions, audit entries) wait in `chat/batch_rows.py` and go in one statement per table; the
busiest handlers use statements built once (`Context.execute`); events and keys are inserted one
statement each. On SQLite the batch's statements run on the loop's own thread
(`app.db.statements_inline`) and only the commit goes to aiosqlite's thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.db import statements_inline, utcnow
from app.errors import DomainError, Forbidden
from chat.batch_rows import BatchRows
from chat.bus import Envelope
from chat.connection import Connection
from chat.guard import (
    Context,
    Handler,
    LiveGateway,
    Recorded,
    RoomBusy,
    answer_error,
    audit,
    error_frame,
    ok_frame,
    result_json,
)
from chat.models import ActionKey, Room, RoomEvent
from chat.protocol import CLOSE_POLICY, Action
from chat.room_cache import FORGET

log = logging.getLogger("dais.chat")

# At most this many actions in one transaction: a bigger batch would hold its first action's
# acknowledgement back longer than a round trip saves.
MAX_BATCH = 100
# Retry hints of `room.busy` stay within these bounds (milliseconds).
RETRY_MIN_MS, RETRY_MAX_MS = 250, 5000
# The batch's statements, built once (each caches its compiled form's key).
NUMBER = (
    update(Room)
    .where(Room.session_id == bindparam("session"))
    .values(last_seq=Room.last_seq + bindparam("count"))
    .returning(Room.last_seq)
)
STORE_EVENTS = insert(RoomEvent.__table__)  # type: ignore[arg-type]
STORE_KEYS = insert(ActionKey.__table__)  # type: ignore[arg-type]
# Keys the process's writers remember having applied, all rooms together (a resend after a
# dropped socket comes within seconds): about 8 MB, however many rooms a long day has had.
RECENT_KEYS = 20_000

Recent = OrderedDict[tuple[str, str, str], str]  # (room, person, key) -> result

# Rows a statement changed, counted per database connection (see `count_changes`).
CHANGED = "dais.rows_changed"


def count_changes(engine: AsyncEngine) -> Any:
    """Count the rows each INSERT, UPDATE and DELETE changes on `engine`'s connections, so the
    writer can tell whether a failed action had written anything. Returns the listener, for
    `event.remove` when the gateway closes."""

    def after(conn: SyncConnection, cursor: Any, statement: Any, params: Any, context: Any, _: Any):  # type: ignore[no-untyped-def]
        if context is not None and (context.isinsert or context.isupdate or context.isdelete):
            rows = cursor.rowcount
            conn.info[CHANGED] = conn.info.get(CHANGED, 0) + (rows if rows >= 0 else 1)

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    return after


@dataclass(slots=True)
class Queued:
    conn: Connection
    handler: Handler
    action: Action
    # Resolved once the action is answered (or dropped): what the socket sends after it waits
    # for that (chat/guard.py's dispatch), so its replies keep the order of its frames.
    answered: asyncio.Future[None]
    # Set after a conflict at commit: its key is looked up in the database first (`careful`),
    # and after a second conflict it is applied in a batch of its own (`single`).
    careful: bool = False
    single: bool = False
    # In the queue (again), not to be resolved yet.
    queued: bool = True


class _Retry(Exception):
    """The batch was rolled back: these actions go back to the front of the queue."""

    def __init__(self, again: list[Queued]) -> None:
        self.again = again


class RoomWriter:
    def __init__(
        self, gateway: LiveGateway, session_id: str, *, limit: int, recent: Recent | None = None
    ) -> None:
        self.gateway = gateway
        self.session_id = session_id
        self.limit = limit
        self.queue: deque[Queued] = deque()
        self.task: asyncio.Task[None] | None = None
        # Actions applied per second, a moving estimate for `room.busy`'s retry hint.
        self.rate = 500.0
        # Actions not applied because their socket had been closed by the server.
        self.dropped = 0
        # The results of keys applied lately, shared by the process's writers (`Writers`):
        # {(room, person, key): result}. A resend of one of these is answered from here; any
        # other applied key is found by the database's primary key when the batch stores it,
        # and the batch then runs again with its keys looked up there (`Queued.careful`).
        self.recent: Recent = OrderedDict() if recent is None else recent

    @property
    def idle(self) -> bool:
        return self.task is None and not self.queue

    def submit(self, conn: Connection, handler: Handler, action: Action) -> asyncio.Future[None]:
        """Queue an action; the future resolves once it has been answered."""
        if len(self.queue) >= self.limit:
            wait_ms = int(1000 * len(self.queue) / max(self.rate, 1.0))
            raise RoomBusy(min(RETRY_MAX_MS, max(RETRY_MIN_MS, wait_ms)))
        answered = asyncio.get_running_loop().create_future()
        self.queue.append(Queued(conn, handler, action, answered))
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"dais-room-{self.session_id}")
        return answered

    def _again(self, items: list[Queued]) -> None:
        """Back to the front of the queue, in their order."""
        for item in items:
            item.queued = True
        self.queue.extendleft(reversed(items))

    async def drain(self) -> None:
        """Wait until everything queued has been applied (the gateway closing)."""
        while self.task is not None:
            await asyncio.shield(self.task)

    async def _run(self) -> None:
        try:
            while self.queue:
                batch = self._take()
                started = time.monotonic()
                try:
                    await self._apply(batch)
                except _Retry as retry:
                    self._again(retry.again)
                except Exception:
                    log.exception("a batch of room actions failed")
                    self._answer_all(
                        [item for item in batch if not item.queued],
                        DomainError("server.error", "Something went wrong."),
                    )
                for item in batch:
                    if not item.queued and not item.answered.done():
                        item.answered.set_result(None)
                spent = max(time.monotonic() - started, 1e-4)
                self.rate = 0.8 * self.rate + 0.2 * (len(batch) / spent)
        finally:
            self.task = None

    def _take(self) -> list[Queued]:
        first = self.queue.popleft()
        batch = [first]
        if not first.single:
            while self.queue and len(batch) < MAX_BATCH:
                item = self.queue[0]
                if item.single:
                    break
                batch.append(self.queue.popleft())
        for item in batch:
            item.queued = False
        return batch

    @staticmethod
    def _answer_all(batch: Iterable[Queued], error: DomainError) -> None:
        for item in batch:
            answer_error(item.conn, error, item.action.id)

    async def _apply(self, batch: list[Queued]) -> None:
        gateway = self.gateway
        replies: list[tuple[Queued, str]] = []
        published: list[Envelope | Recorded] = []
        async with gateway.sessionmaker() as db, statements_inline(db):
            connection = await db.connection()
            try:
                facts = await gateway.cache.facts(db, self.session_id)
            except DomainError as error:  # the session is gone
                self._answer_all(batch, error)
                return
            applied = self._recent_keys(batch)
            if any(item.careful for item in batch):
                applied |= await _applied_keys(db, self.session_id, batch)
            keys: list[dict[str, Any]] = []
            rows = BatchRows()
            for index, item in enumerate(batch):
                conn, handler, action = item.conn, item.handler, item.action
                if conn.closing is not None and conn.closing[0] == CLOSE_POLICY:
                    # Removed, revoked or its role changed since: not applied, and no one to tell.
                    self.dropped += 1
                    log.info(
                        "not applied: %s from a socket closed for %s", action.type, conn.closing[1]
                    )
                    continue
                keyed = (conn.person_id, action.key) if action.key else None
                if keyed is not None and keyed in applied:
                    replies.append((item, ok_frame(action.id, applied[keyed])))
                    continue
                ctx = Context(
                    gateway,
                    conn,
                    db,
                    facts.room,
                    facts.session,
                    facts.event,
                    facts.sanctions,
                    rows=rows,
                )
                if handler.sees_batch:
                    await rows.write(db)
                start = _Mark.take(db, connection, rows)
                try:
                    if facts.sanctions.is_removed(conn.person_id):
                        raise Forbidden("room.removed", "You have been removed from this room.")
                    if conn.role not in handler.permission:
                        await audit(db, ctx, handler, action, outcome="forbidden")
                        await db.flush()
                        start = _Mark.take(db, connection, rows)  # the refusal's entry stays
                        raise Forbidden("auth.forbidden", "You may not do this here.")
                    result = await handler.fn(ctx, action)
                    if handler.audited:
                        await audit(db, ctx, handler, action, outcome="done")
                except DomainError as error:
                    if start.wrote(db, connection, rows):
                        log.info(
                            "%s failed after writing: its batch is applied again", handler.name
                        )
                        await db.rollback()
                        answer_error(conn, error, action.id)
                        raise _Retry(batch[:index] + batch[index + 1 :]) from None
                    start.drop_rows(rows)  # added, never written: the refusal leaves nothing
                    replies.append((item, error_frame(error, action.id)))
                    continue
                except Exception:
                    log.exception("live action %s failed", handler.name)
                    await db.rollback()
                    answer_error(
                        conn, DomainError("server.error", "Something went wrong."), action.id
                    )
                    raise _Retry(batch[:index] + batch[index + 1 :]) from None
                result_text = result_json(result)
                if keyed is not None:
                    keys.append(
                        {
                            "session_id": self.session_id,
                            "person_id": keyed[0],
                            "key": keyed[1],
                            "result": result_text,
                            "created_at": utcnow(),
                        }
                    )
                    applied[keyed] = result_text
                replies.append((item, ok_frame(action.id, result_text)))
                published += ctx.published
                if any(isinstance(e, Envelope) and e.kind == FORGET for e in ctx.published):
                    # The room's settings or sanctions changed: what follows is checked anew.
                    self._again(batch[index + 1 :])
                    break
            try:
                await rows.write(db)
                await self._number(db, [r for r in published if isinstance(r, Recorded)])
                if keys:
                    # Rows nothing in the batch reads back: one statement, no unit of work.
                    await (await db.connection()).execute(STORE_KEYS, keys)
                await db.commit()
            except IntegrityError:
                # A key applied before (by another process, or before a restart) or another
                # process storing the same key or vote meanwhile: again with the keys looked up
                # in the database, then one by one.
                await db.rollback()
                # (Those queued again after a change of settings are there already.)
                tried = [item for item in batch if not item.queued]
                if len(tried) == 1 and tried[0].single:
                    self._answer_all(tried, DomainError("server.error", "Something went wrong."))
                    return
                for item in tried:
                    if item.careful:
                        item.single = True
                    item.careful = True
                raise _Retry(tried) from None
        for row in keys:
            self._remember((row["person_id"], row["key"]), row["result"])
        # Committed: forget what changed here at once (other processes by the bus), acknowledge
        # in order, then broadcast in order.
        envelopes = [r.envelope if isinstance(r, Recorded) else r for r in published]
        for envelope in envelopes:
            if envelope is not None and envelope.kind == FORGET:
                gateway.cache.forget(envelope)
        for item, frame in replies:
            item.conn.reply(frame)
        await gateway.bus.publish_many([e for e in envelopes if e is not None])

    def _recent_keys(self, batch: list[Queued]) -> dict[tuple[str, str], str]:
        recent = self.recent
        found = {}
        for item in batch:
            key = item.action.key
            if key is not None:
                result = recent.get((self.session_id, item.conn.person_id, key))
                if result is not None:
                    found[item.conn.person_id, key] = result
        return found

    def _remember(self, keyed: tuple[str, str], result: str) -> None:
        self.recent[(self.session_id, *keyed)] = result
        if len(self.recent) > RECENT_KEYS:
            self.recent.popitem(last=False)

    async def _number(self, db: AsyncSession, recorded: list[Recorded]) -> None:
        """Give the batch's room events consecutive seqs with one update of the room's counter
        (which holds the room's row until the commit), and store them for replay."""
        if not recorded:
            return
        connection = await db.connection()
        last = (
            await connection.execute(NUMBER, {"session": self.session_id, "count": len(recorded)})
        ).scalar()
        assert last is not None
        seq = last - len(recorded)
        rows = []
        now = utcnow()
        for item in recorded:
            seq += 1
            item.event.seq = seq
            frame = item.event.model_dump_json()
            rows.append(
                {
                    "session_id": self.session_id,
                    "seq": seq,
                    "type": item.event.type,
                    "audience": item.audience,
                    "subject_id": item.subject_id,
                    "frame": frame,
                    "withdrawn": False,
                    "created_at": now,
                }
            )
            item.envelope = Envelope("frame", self.session_id, item.audience, seq, frame)
        # One statement for the batch's events, without the ORM's unit of work.
        await connection.execute(STORE_EVENTS, rows)


@dataclass(slots=True)
class _Mark:
    """Where the batch stood when an action began, to tell whether the action wrote anything.

    The batch's rows are written together (at its end, or when a handler's query flushes them
    first), so a failing action may have flushed earlier actions' objects: those are `pending`
    (objects added, changed or deleted and not yet written) and each writes one row."""

    changed: int  # rows changed on the connection so far
    pending: int
    probe: object  # one of the pending objects, to see whether they were flushed since
    rows: int  # the batch's rows waiting (chat/batch_rows.py)
    rows_written: int  # and written

    @classmethod
    def take(cls, db: AsyncSession, connection: AsyncConnection, rows: BatchRows) -> _Mark:
        pending = [*db.new, *db.dirty, *db.deleted]
        return cls(
            connection.info.get(CHANGED, 0),
            len(pending),
            pending[0] if pending else None,
            len(rows.pending),
            rows.written,
        )

    def drop_rows(self, rows: BatchRows) -> None:
        """Forget the rows the action added and that are still waiting."""
        rows.drop_after(self.rows if rows.written == self.rows_written else 0)

    def wrote(self, db: AsyncSession, connection: AsyncConnection, rows: BatchRows) -> bool:
        """True when the action changed rows or objects of its own (or when that cannot be told
        apart from earlier actions' writes: the batch is then applied again, which is safe).
        Rows it added and that still wait are not written: `drop_rows` forgets them."""
        changed = connection.info.get(CHANGED, 0) - self.changed
        if rows.written != self.rows_written:
            # The action wrote the batch's waiting rows (`Context.write_batch`): those of
            # earlier actions are not its own; any of its own written with them are.
            changed -= self.rows
        pending_now = len(db.new) + len(db.dirty) + len(db.deleted)
        probe = self.probe
        flushed = probe is not None and not (
            probe in db.new or probe in db.dirty or probe in db.deleted
        )
        if flushed:
            return changed != self.pending or pending_now != 0
        return changed != 0 or pending_now != self.pending


async def _applied_keys(
    db: AsyncSession, session_id: str, batch: list[Queued]
) -> dict[tuple[str, str], str]:
    """The results of the batch's keys applied before: {(person, key): result}."""
    keys = {item.action.key for item in batch if item.action.key}
    if not keys:
        return {}
    rows = await db.execute(
        select(ActionKey.person_id, ActionKey.key, ActionKey.result).where(
            ActionKey.session_id == session_id, ActionKey.key.in_(keys)
        )
    )
    return {(person_id, key): result for person_id, key, result in rows}


class Writers:
    """Every room's writer in this process; built with the gateway."""

    def __init__(self, gateway: LiveGateway, *, limit: int) -> None:
        self.gateway = gateway
        self.limit = limit
        self._writers: dict[str, RoomWriter] = {}
        self.recent: Recent = OrderedDict()

    def submit(self, conn: Connection, handler: Handler, action: Action) -> asyncio.Future[None]:
        writer = self._writers.get(conn.session_id)
        if writer is None:
            if len(self._writers) > 1000:
                self._writers = {k: w for k, w in self._writers.items() if not w.idle}
            writer = self._writers[conn.session_id] = RoomWriter(
                self.gateway, conn.session_id, limit=self.limit, recent=self.recent
            )
        return writer.submit(conn, handler, action)

    def writer(self, session_id: str) -> RoomWriter | None:
        return self._writers.get(session_id)

    async def drain(self, timeout: float) -> None:
        """Apply what is queued before the process stops (at most `timeout` seconds)."""
        waits = [w.drain() for w in self._writers.values() if not w.idle]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except TimeoutError:
                log.warning("room actions still queued at shutdown were not applied")
