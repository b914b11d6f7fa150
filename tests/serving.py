"""Run Dais the way a user does (`dais serve` in its own process) for tests that need a real server."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from ssl import SSLContext
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

DAIS = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dais_env(database_url: str, data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment for a Dais process: this machine's, with only the given DAIS_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAIS_")}
    env.update(
        DAIS_DATABASE_URL=database_url,
        DAIS_DATA_DIR=str(data_dir),
        DAIS_BASE_URL=f"http://127.0.0.1:{port}",
    )
    # A given base_url (a proxy's public URL) replaces the server's own.
    env.update({f"DAIS_{k.upper()}": v for k, v in extra.items()})
    return env


def wait_until_serving(base_url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dais exited with {server.returncode} before serving")
        try:
            httpx.get(f"{base_url}/api/events", timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"dais did not serve {base_url} within {seconds} s")


@contextmanager
def dais_process(
    database_url: str, data_dir: Path, port: int, *args: str, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`dais serve ARGS` on `port`, serving when the block starts; stopped when it ends (if the
    block has not killed it already)."""
    # What it prints for people (links) and what it logs are kept apart, as a deployment would.
    with (
        (data_dir / f"dais-{port}.out").open("a") as printed,
        (data_dir / f"dais-{port}.log").open("a") as log,
        subprocess.Popen(
            [*DAIS, "serve", "--port", str(port), *args],
            env=dais_env(database_url, data_dir, port, **settings),
            stdout=printed,
            stderr=log,
        ) as server,
    ):
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", server)
            yield server
        finally:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    server.kill()


@contextmanager
def dais_server(database_url: str, data_dir: Path, *args: str, **settings: str) -> Iterator[str]:
    """`dais serve ARGS` on a free port until the block ends; yields its base URL."""
    port = free_port()
    with dais_process(database_url, data_dir, port, *args, **settings):
        yield f"http://127.0.0.1:{port}"


async def demo_attendee(
    base_url: str, display_name: str, *, verify: bool = True
) -> tuple[str, str]:
    """Registers an attendee of the demo event through `base_url` (as the event page does); their
    session cookie and the id of the demo's first session."""
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Origin": base_url}, verify=verify
    ) as browser:
        registered = await browser.post(
            "/api/events/tackling-stalking/register", json={"display_name": display_name}
        )
        registered.raise_for_status()
        agenda = (await browser.get("/api/events/tackling-stalking/agenda")).json()
        return registered.cookies["dais_session"], agenda["sessions"][0]["id"]


async def join_live(
    live_url: str, cookie: str, origin: str, ssl: SSLContext | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    """A tab's live socket joined with the session cookie (docs/protocol.md); the join reply."""
    ws = await websockets.connect(
        live_url,
        origin=origin,  # type: ignore[arg-type]
        additional_headers={"Cookie": f"dais_session={cookie}"},
        open_timeout=5,
        close_timeout=2,
        ssl=ssl,
    )
    await ws.send(json.dumps({"type": "room.join", "id": 1}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 5))
