"""The migrations build the same schema as the models, and go down and up again cleanly."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from app.migrate import downgrade, upgrade
from migrations.models import Base
from tests.conftest import PG_SERVER, _pg_admin


async def _schema(url: str) -> tuple[set[str], list]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:

            def read(sync_conn):
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                diff = compare_metadata(context, Base.metadata)
                return set(inspect(sync_conn).get_table_names()), diff

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"dais_migrations_{tmp_path.name[-20:].replace('-', '_')}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_an_empty_database_upgrades_downgrades_and_upgrades_again(empty_database):
    await asyncio.to_thread(upgrade, empty_database)
    tables, diff = await _schema(empty_database)
    assert set(Base.metadata.tables) <= tables
    assert diff == [], "the models and the migrations disagree"

    await asyncio.to_thread(downgrade, empty_database, "base")
    tables, _ = await _schema(empty_database)
    assert tables <= {"alembic_version"}

    await asyncio.to_thread(upgrade, empty_database)
    tables, diff = await _schema(empty_database)
    assert set(Base.metadata.tables) <= tables and diff == []
