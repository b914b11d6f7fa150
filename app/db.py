"""Persistence plumbing: the declarative base, a UTC datetime column type, and engine set-up
(SQLite with its settings chosen on purpose, and one thread hop per statement)."""

from __future__ import annotations

import collections
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiosqlite
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import EMPTY_DICT

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


SQLITE_BUSY_TIMEOUT_MS = 30000

# SQLite, chosen on purpose (docs/deploy.md):
SQLITE_PRAGMAS = (
    # Off by default in SQLite; the schema relies on cascades.
    "foreign_keys=ON",
    # Write-ahead log: readers (joins, history) never wait for the writer, nor it for them.
    "journal_mode=WAL",
    # Every commit waits for the log to reach the disk (an fsync, ~0.3 ms here), so what was
    # acknowledged survives a power cut, not only a crash. A room's actions are committed in
    # batches (chat/writer.py), so this is one fsync per batch, not per action. NORMAL would be
    # ~20 times cheaper per commit and could lose the last commits on power loss: not for us.
    "synchronous=FULL",
    # Several processes share the file: wait for its write lock rather than fail (never on the
    # event loop's thread: see `statements_inline`).
    f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    # 32 MB of page cache per connection (the default is 2 MB): a long room's indexes stay in
    # memory, and temporary sorts (a join's top questions) stay off the disk.
    "cache_size=-32000",
    "temp_store=MEMORY",
)


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        # One thread hop per statement rather than four (`OneHopCursor`).
        engine = create_async_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, module=_one_hop_dbapi()
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# -- SQLite for the event loop with one thread hop per statement ---------------------------------
#
# aiosqlite runs each sqlite3 call on its own thread and hands the result back to the loop; its
# SQLAlchemy adapter makes four such calls for a statement (open a cursor, execute, fetch, close).
# Every hand-back waits for the loop's next turn, so on a busy server (a room's sockets reading
# and writing) a statement took a millisecond or more however little SQLite had to do, and a
# room's batch of statements (chat/writer.py) ten. Here the cursor does all four in one call on
# aiosqlite's thread: same driver, same thread, same errors; a quarter of the waits.
#
# `make_engine` passes `_one_hop_dbapi()` to SQLAlchemy as the DBAPI module (`module=`, a
# documented parameter); nothing else changes. Server-side cursors (streamed results) stay as
# SQLAlchemy makes them.

Outcome = tuple[Any, int, int | None, list[Any] | None]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> Outcome:
    """On aiosqlite's thread: the whole statement, and what the cursor said of it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement runs in one call on the connection's thread."""

    __slots__ = ("_outcome",)

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._outcome: Outcome = (None, -1, None, None)

    @property
    def description(self) -> Any:
        return self._outcome[0]

    @property
    def rowcount(self) -> int:
        return self._outcome[1]

    @property
    def lastrowid(self) -> int:
        return self._outcome[2]  # type: ignore[return-value]

    async def _run(self, operation: Any, parameters: Any, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        async with self._adapt_connection._execute_mutex:
            if self._adapt_connection.inline:  # type: ignore[attr-defined]
                self._outcome = _run(connection._conn, operation, parameters, many)
            else:
                self._outcome = await connection._execute(
                    _run, connection._conn, operation, parameters, many
                )
        rows = self._outcome[3]
        self._rows = collections.deque(rows) if rows else collections.deque()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        await self._run(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> Any:
        await self._run(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        return  # nothing is open on the thread

    def close(self) -> None:
        self._rows.clear()


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("inline",)

    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.inline = False


@asynccontextmanager
async def statements_inline(db: AsyncSession) -> AsyncIterator[None]:
    """While open, `db`'s SQLite statements run on the event loop's own thread.

    For a room's writer (chat/writer.py): its statements each take SQLite microseconds (rows by
    primary key, appends), while a hop to aiosqlite's thread and back waits for the busy loop,
    and for the thread to get the interpreter back, several milliseconds each under load: a
    batch of eight statements waited longer than it worked. The commit (its fsync) still goes
    to the thread. Reads that may take long (a join's snapshot, history) keep the thread. Does
    nothing on PostgreSQL.

    The file's write lock is taken first (`BEGIN IMMEDIATE`), so no statement on the loop ever
    waits for it: another connection (a join, an attendance sample, another process) may hold it
    while it awaits the loop itself, and a statement waiting on the loop's thread would stop that
    connection too, every socket of the process with it, until `busy_timeout`. When the lock is
    not free at once, it is waited for on aiosqlite's thread, the loop running meanwhile."""
    raw = await (await db.connection()).get_raw_connection()
    adapted = raw.dbapi_connection
    if not isinstance(adapted, OneHopConnection):
        yield
        return
    await _write_lock(adapted._connection)  # type: ignore[arg-type]
    adapted.inline = True
    try:
        yield
    finally:
        adapted.inline = False


async def _write_lock(connection: aiosqlite.Connection) -> None:
    """Begin the connection's transaction holding the file's write lock: on the loop's thread
    when it is free now, else waiting for it on aiosqlite's thread."""
    conn = connection._conn
    if conn.in_transaction:
        return  # begun by an earlier statement of this session (it holds the lock if it wrote)
    conn.execute("PRAGMA busy_timeout=0")
    try:
        conn.execute("BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError:
        pass  # another connection holds it: wait below, off the loop
    finally:
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor = await connection.execute("BEGIN IMMEDIATE")
    await cursor.close()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def _one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
