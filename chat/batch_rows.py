"""Rows a room's batch adds and nothing in the batch reads back: chat messages, questions, audit
entries. They wait here, not in the ORM's unit of work, and each table's are written with one
statement: before the batch commits, or earlier, before a handler that must see them runs
(`Handler.sees_batch`, `Context.write_batch`). A refused action's rows are simply dropped: it
never wrote them (see chat/writer.py).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Base


@cache
def _insert(table: Table) -> Insert:
    # Built once per table: a statement object caches its own compiled form's key.
    return insert(table)


class BatchRows:
    __slots__ = ("pending", "written")

    def __init__(self) -> None:
        self.pending: list[tuple[Table, dict[str, Any]]] = []
        # Rows written so far (by `write`), for the writer to tell whose rows a write took.
        self.written = 0

    def add(self, model: type[Base], values: dict[str, Any]) -> None:
        """A row of `model`'s table, with every column it sets (rows of one table are written
        together: give each the same columns)."""
        self.pending.append((model.__table__, values))  # type: ignore[arg-type]

    def drop_after(self, count: int) -> None:
        """Forget the rows added after the first `count` (a refused action's)."""
        del self.pending[count:]

    async def write(self, db: AsyncSession) -> None:
        """Write what is waiting, one statement per table (and set of columns), in the order
        each table was first added to."""
        if not self.pending:
            return
        groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        for table, values in self.pending:
            groups.setdefault((table, tuple(values)), []).append(values)
        count = len(self.pending)
        self.pending = []
        connection = await db.connection()
        for (table, _), rows in groups.items():
            await connection.execute(_insert(table), rows)
        self.written += count
