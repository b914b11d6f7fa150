"""Persistence plumbing: the declarative base, a UTC datetime column type, and engine set-up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

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
    # Several processes share the file: wait for its write lock rather than fail.
    "busy_timeout=30000",
    # 32 MB of page cache per connection (the default is 2 MB): a long room's indexes stay in
    # memory, and temporary sorts (a join's top questions) stay off the disk.
    "cache_size=-32000",
    "temp_store=MEMORY",
)


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

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
