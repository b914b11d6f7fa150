"""A real Dais server (uvicorn in a subprocess, fresh migrated SQLite with the demo event) and
Debian's Chromium driven by Playwright, for the tests that check what people see.

Chromium runs with fake camera and microphone; every request that would leave 127.0.0.1 is
stopped and recorded, so a test can assert the pages make no third-party requests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Route, async_playwright

from app.db import make_engine, make_sessionmaker
from app.demo import ORGANISER_EMAIL, SLUG, demo_password, load_demo
from app.migrate import upgrade
from app.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
NEUTRAL_URL = "https://www.bbc.co.uk/weather"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; installed with apt once if missing. A missing browser fails, never skips."""
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None:
            pytest.fail("Chromium is missing at /usr/bin/chromium and apt-get is not available")
        result = subprocess.run(
            ["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0 or not CHROMIUM.exists():
            pytest.fail(f"could not install Chromium with apt-get:\n{result.stderr[-2000:]}")
    return CHROMIUM


@dataclass
class DaisServer:
    base_url: str
    settings: Settings
    organiser_email: str = ORGANISER_EMAIL
    slug: str = SLUG

    @property
    def organiser_password(self) -> str:
        return demo_password(self.settings)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=10)

    @property
    def same_origin(self) -> dict[str, str]:
        """Headers of a request made by Dais's own pages: Playwright's API requests name no
        `Origin`, and cookie requests that name none are refused as possible forgeries."""
        return {"Origin": self.base_url}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _load_demo(settings: Settings) -> None:
    engine = make_engine(settings.resolved_database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            await load_demo(db, settings)
    finally:
        await engine.dispose()


class ServerProcess:
    """Dais under uvicorn in a subprocess on a fixed port and database; can be restarted."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            database_url=f"sqlite+aiosqlite:///{data_dir / 'dais.db'}",
            data_dir=data_dir,
            secret_key="browser-test-secret",
            base_url=self.base_url,
        )
        upgrade(self.settings.resolved_database_url)
        asyncio.run(_load_demo(self.settings))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        env = {
            **os.environ,
            "DAIS_DATABASE_URL": self.settings.resolved_database_url,
            "DAIS_DATA_DIR": str(self.data_dir),
            "DAIS_SECRET_KEY": self.settings.secret_key,
            "DAIS_BASE_URL": self.base_url,
            # Attendance is stored per minute; sampling often fills the organiser's chart in a run.
            "DAIS_LIVE_ATTENDANCE_EVERY_SECONDS": "2",
        }
        self.starts += 1
        log = (self.data_dir / f"server-{self.starts}.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.base_url}/api/events", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Dais did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return (self.data_dir / f"server-{self.starts}.log").read_text()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def server(self) -> DaisServer:
        return DaisServer(base_url=self.base_url, settings=self.settings)


@pytest.fixture(scope="session")
def dais_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaisServer]:
    running = ServerProcess(tmp_path_factory.mktemp("browser-server"))
    try:
        running.start()
        yield running.server()
    finally:
        running.stop()


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Contexts:
    """Opens browser contexts (one per person) that can reach only the Dais under test."""

    browser: Browser
    server: DaisServer
    outside: list[str] = field(default_factory=list)
    neutral_visits: list[str] = field(default_factory=list)

    async def new(self, **options: object) -> BrowserContext:
        options.setdefault("base_url", self.server.base_url)
        options.setdefault("locale", "en-GB")
        context = await self.browser.new_context(**options)  # type: ignore[arg-type]
        context.set_default_timeout(10_000)

        async def guard(route: Route) -> None:
            url = route.request.url
            if (
                url.startswith(self.server.base_url)
                or url.startswith("data:")
                or url.startswith("blob:")
            ):
                await route.continue_()
            elif url.startswith(NEUTRAL_URL):
                self.neutral_visits.append(url)
                await route.fulfill(
                    status=200, content_type="text/html", body="<title>Weather</title>neutral"
                )
            else:
                self.outside.append(url)
                await route.abort()

        await context.route("**/*", guard)
        return context


@pytest.fixture
async def contexts(browser: Browser, dais_server: DaisServer) -> AsyncIterator[Contexts]:
    made = Contexts(browser, dais_server)
    yield made
    for context in browser.contexts:
        await context.close()
    assert made.outside == [], f"pages made third-party requests: {made.outside}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
