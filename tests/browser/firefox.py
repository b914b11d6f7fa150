"""Debian's Firefox ESR for the browser tests, driven over Marionette.

Playwright drives only its own patched Firefox, which cannot be downloaded here; Debian's
firefox-esr speaks Marionette, the protocol geckodriver uses to drive it: length-prefixed JSON over
TCP. This is the small part of it the tests need: open a page, run a script (a returned promise is
awaited), read the result. Firefox runs headless with its fake camera and microphone, media
permission granted, autoplay allowed, and loopback ICE candidates on (the server is on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"

PREFERENCES = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "remote.prefs.recommended": True,
}


class FirefoxError(RuntimeError):
    pass


class Firefox:
    """One headless Firefox with one Marionette session."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)

    async def _read(self) -> Any:
        length = int((await self._reader.readuntil(b":"))[:-1])
        return json.loads(await self._reader.readexactly(length))

    async def command(self, name: str, **params: Any) -> Any:
        message_id = next(self._ids)
        data = json.dumps([0, message_id, name, params]).encode()
        self._writer.write(str(len(data)).encode() + b":" + data)
        await self._writer.drain()
        while True:
            kind, reply_id, error, result = await self._read()
            if kind == 1 and reply_id == message_id:
                break
        if error:
            raise FirefoxError(f"{name}: {error.get('error')}: {error.get('message')}")
        return result

    async def goto(self, url: str) -> None:
        await self.command("WebDriver:Navigate", url=url)

    async def run(self, script: str, *args: Any) -> Any:
        """The value of `script` (a function body; `arguments` are `args`), awaited if a promise."""
        result = await self.command("WebDriver:ExecuteScript", script=script, args=list(args))
        return result.get("value")

    async def wait_for(self, script: str, *args: Any, timeout: float = 20.0) -> Any:
        """Run `script` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.run(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout} s: {script}")
            await asyncio.sleep(0.25)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def firefox(profile: Path) -> AsyncIterator[Firefox]:
    """A fresh headless Firefox (its own profile folder) until the block ends."""
    profile.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    preferences = {**PREFERENCES, "marionette.port": port}
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in preferences.items())
    )
    log = (profile / "firefox.log").open("w")
    process = subprocess.Popen(
        [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    writer: asyncio.StreamWriter | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise FirefoxError(
                        f"Firefox did not start: {(profile / 'firefox.log').read_text()}"
                    ) from None
                await asyncio.sleep(0.2)
        browser = Firefox(reader, writer)
        await browser._read()  # the server's greeting: {"applicationType": "gecko", ...}
        await browser.command("WebDriver:NewSession", capabilities={})
        yield browser
    finally:
        if writer is not None:
            writer.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
