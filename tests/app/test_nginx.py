"""Dais behind Debian's nginx with docs/nginx.conf (only its ports, paths and upstream replaced):
pages, the API and the live websocket go through; the Origin check and Secure cookies still hold
with DAIS_BASE_URL set to the public URL; nginx cuts slow request heads; and neither nginx's logs
nor Dais's hold an address."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets

from tests.serving import dais_process, demo_attendee, free_port, join_live

pytestmark = pytest.mark.slow

CONF = Path(__file__).parents[2] / "docs" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# docs/nginx.conf's client_header_timeout.
HEADER_SECONDS = 10


@dataclass
class Proxy:
    url: str  # the public https:// URL
    http_url: str  # plain http, which only redirects
    logs: Path


def tls_context() -> ssl.SSLContext:
    """A client that takes the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def configured(prefix: Path, https_port: int, http_port: int, upstream: str) -> str:
    """docs/nginx.conf for this run: loopback ports, files under `prefix`, one upstream."""
    text = CONF.read_text()
    replacements = [
        (r"listen 80;", f"listen 127.0.0.1:{http_port};"),
        (r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        (r"server 127\.0\.0\.1:8000;", f"server {upstream};"),
        (r"/run/nginx\.pid", str(prefix / "nginx.pid")),
        (r"/var/log/nginx/", f"{prefix}/"),
        (r"/etc/ssl/certs/dais\.example\.org\.pem", str(prefix / "cert.pem")),
        (r"/etc/ssl/private/dais\.example\.org\.key", str(prefix / "key.pem")),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count, pattern
    return text


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    """`dais serve --demo` on a free port, behind nginx on two more; all on loopback."""
    https_port, http_port, dais_port = free_port(), free_port(), free_port()
    public = f"https://127.0.0.1:{https_port}"
    # nginx's workers run as www-data (the `user` line), so their files live in a directory they
    # can reach (pytest's tmp_path is private to root).
    prefix = Path(tempfile.mkdtemp(prefix="dais-nginx-"))
    prefix.chmod(0o755)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-keyout", str(prefix / "key.pem"), "-out", str(prefix / "cert.pem")],
        check=True,
        capture_output=True,
    )
    conf = prefix / "nginx.conf"
    conf.write_text(configured(prefix, https_port, http_port, f"127.0.0.1:{dais_port}"))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'dais.db'}"
    with dais_process(
        database_url,
        tmp_path,
        dais_port,
        "--demo",
        base_url=public,
        trusted_proxies='["127.0.0.1"]',
    ):
        with subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            stderr=subprocess.PIPE,
            text=True,
        ) as nginx:
            try:
                deadline = time.monotonic() + 10
                while True:
                    assert nginx.poll() is None, nginx.communicate()[1]
                    try:
                        httpx.get(
                            f"{public}/api/events", verify=False, timeout=2
                        ).raise_for_status()
                        break
                    except httpx.HTTPError:
                        assert time.monotonic() < deadline, "nginx did not pass requests on"
                        time.sleep(0.1)
                yield Proxy(url=public, http_url=f"http://127.0.0.1:{http_port}", logs=prefix)
            finally:
                nginx.terminate()
                nginx.wait(timeout=10)
                shutil.rmtree(prefix, ignore_errors=True)


async def test_an_attendee_takes_part_through_the_proxy(proxy: Proxy, tmp_path: Path) -> None:
    """SECURITY 1 and 13 behind nginx: the event page and the API are served over https; plain
    http redirects there; registering gives a Secure cookie (DAIS_BASE_URL is https); the live
    socket upgrades through nginx and joins with that cookie; an upgrade from another origin is
    refused; and no address reaches nginx's logs or Dais's."""
    async with httpx.AsyncClient(base_url=proxy.url, verify=False) as browser:
        page = await browser.get("/e/tackling-stalking")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        events = (await browser.get("/api/events")).json()
        assert [event["slug"] for event in events] == ["tackling-stalking"]
    async with httpx.AsyncClient(base_url=proxy.http_url) as plain:
        redirected = await plain.get("/e/tackling-stalking")
        assert redirected.status_code == 301
        assert redirected.headers["location"] == (
            "https://127.0.0.1/e/tackling-stalking"  # $host has no port; 443 in production
        )
    async with httpx.AsyncClient(
        base_url=proxy.url, verify=False, headers={"Origin": proxy.url}
    ) as browser:
        registered = await browser.post(
            "/api/events/tackling-stalking/register", json={"display_name": "Noor"}
        )
        assert registered.status_code == 201
        assert "secure" in registered.headers["set-cookie"].lower()

    cookie, session_id = await demo_attendee(proxy.url, "Sam", verify=False)
    live_url = f"{proxy.url.replace('https://', 'wss://')}/api/sessions/{session_id}/live"
    ws, joined = await join_live(live_url, cookie, origin=proxy.url, ssl=tls_context())
    try:
        assert joined["type"] == "ok", joined
        assert joined["result"]["you"]["name"] == "Sam"
        await ws.send(json.dumps({"type": "chat.send", "id": 2, "text": "Through the proxy"}))
        while (frame := json.loads(await asyncio.wait_for(ws.recv(), 5))).get("id") != 2:
            pass
        assert frame["type"] == "ok", frame
    finally:
        await ws.close()

    with pytest.raises(websockets.InvalidStatus) as refused:
        await join_live(live_url, cookie, origin="https://evil.example", ssl=tls_context())
    assert refused.value.response.status_code == 403

    access = (proxy.logs / "dais-access.log").read_text()
    assert '"GET /e/tackling-stalking" 200' in access
    assert f'"GET /api/sessions/{session_id}/live" 101' in access
    for log in [proxy.logs / "dais-access.log", proxy.logs / "error.log", *tmp_path.glob("*.log")]:
        # Dais's own listening address may be logged; nobody else's.
        lines = [line for line in log.read_text().splitlines() if "Uvicorn running on" not in line]
        assert not any("127.0.0.1" in line or cookie in line for line in lines), log


async def test_nginx_cuts_slow_request_heads_while_attendees_are_served(proxy: Proxy) -> None:
    """SECURITY 28: connections dripping their request head a byte a second are closed by nginx at
    client_header_timeout, without reaching Dais; an attendee is served promptly meanwhile."""
    loop = asyncio.get_running_loop()
    port = int(proxy.url.rsplit(":", 1)[1])

    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float | None:
        opened = loop.time()
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: dais.example.org\r\nX-Slow: ")
        try:
            while loop.time() - opened < HEADER_SECONDS + 10:
                try:
                    answer = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    writer.write(b"a")
                    await writer.drain()
                    continue
                assert answer == b"", answer
                return loop.time() - opened
        except (ConnectionError, ssl.SSLError):
            return loop.time() - opened
        finally:
            writer.close()
        return None

    # The handshakes first: this process doing 20 of them at once would slow its own requests.
    connections = [
        await asyncio.open_connection("127.0.0.1", port, ssl=tls_context()) for _ in range(20)
    ]
    attack = [asyncio.create_task(drip(*connection)) for connection in connections]
    latencies = []
    async with httpx.AsyncClient(base_url=proxy.url, verify=False) as browser:
        while not all(task.done() for task in attack):
            started = loop.time()
            assert (await browser.get("/api/events")).status_code == 200
            latencies.append(loop.time() - started)
            await asyncio.sleep(0.5)
    closed_after = [await task for task in attack]
    # Timed by nginx from accepting the connection, before the TLS handshake timed here.
    assert all(s is not None and s < HEADER_SECONDS + 3 for s in closed_after), closed_after
    assert max(latencies) < 1.0, latencies
