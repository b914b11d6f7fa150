"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, migrated with Alembic.

PostgreSQL gets a database of its own per test run (created in the `test` database's server and
dropped at the end), so concurrent runs on one machine do not collide.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings
from migrations.models import Base

PG_SERVER = os.environ.get("DAIS_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("DAIS_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def _pg_admin(sql: str) -> None:
    engine = create_async_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole run."""
    sqlite_path = tmp_path_factory.mktemp("db") / "dais.db"
    pg_name = f"dais_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{pg_name}"'))
    urls = {
        "sqlite": f"sqlite+aiosqlite:///{sqlite_path}",
        "postgresql": f"{PG_SERVER}/{pg_name}",
    }
    for url in urls.values():
        upgrade(url)
    try:
        yield urls
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


async def empty_tables(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                for table in tables:
                    await conn.execute(text(f"DELETE FROM {table}"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, migrated_urls: dict[str, str]) -> str:
    """A migrated, empty database: each test using it runs once per backend."""
    url = migrated_urls[request.param]
    await empty_tables(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret-key",
        base_url="http://testserver",
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@dataclass
class Clients:
    """Makes HTTP clients for the app under test, each with its own cookie jar (one browser)."""

    app: object

    def browser(self) -> httpx.AsyncClient:
        """A browser on the site's own pages: its requests name the site as their `Origin`."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),  # type: ignore[arg-type]
            base_url="http://testserver",
            headers={"Origin": "http://testserver"},
        )


@pytest.fixture
async def clients(app: object) -> Clients:
    return Clients(app)
