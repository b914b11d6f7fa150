"""Attendees on slow links, for real: browsers in network namespaces behind `tc ... tbf` caps.

A `Network` is a bridge on this machine with one namespace per `Link` behind a veth pair; what the
server sends an attendee leaves the bridge through the link's host end, where `tbf` caps it. Dais
runs on the bridge's address (`dais_on`), and each link's Chromium is started inside its
namespace (`Link.chromium`, a wrapper script). Only addresses inside the namespaces and on the
bridge are used; everything is removed at the end, however it ends. Needs root (`ip netns`).

Used by tests/browser/test_slow_links.py (in CI) and bench/adapt.py (by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.migrate import upgrade
from app.settings import Settings
from tests.browser.conftest import CHROMIUM, DaisServer, _load_demo
from tests.serving import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
PREFIX = 24
FREEZE_S = 0.2  # no new frame for longer than this: a freeze


@dataclass
class Link:
    name: str  # the namespace (and the prefix of its interfaces' names: at most 13 characters)
    cap_kbps: int
    address: str

    @property
    def host_end(self) -> str:
        return f"{self.name}-h"

    @property
    def chromium(self) -> Path:
        return Path(tempfile.gettempdir()) / f"chromium-{self.name}"


@dataclass
class Network:
    bridge: str
    host_address: str  # the bridge's: where Dais listens
    links: list[Link]


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def can_make_namespaces() -> str | None:
    """None if this process can make network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"dais-probe-{os.getpid() % 100000}"
    try:
        run("ip", "netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as error:
        return f"cannot make a network namespace: {error}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


@contextlib.contextmanager
def network(net: Network) -> Iterator[Network]:
    """The bridge, one namespace per link behind a veth pair, each capped by tbf on the way in."""
    try:
        run("ip", "link", "add", net.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{net.host_address}/{PREFIX}", "dev", net.bridge)
        run("ip", "link", "set", net.bridge, "up")
        for link in net.links:
            run("ip", "netns", "add", link.name)
            run("ip", "link", "add", link.host_end, "type", "veth", "peer", "name", "eth0",
                "netns", link.name)  # fmt: skip
            run("ip", "link", "set", link.host_end, "master", net.bridge, "up")
            ns = ("ip", "netns", "exec", link.name)
            run(*ns, "ip", "addr", "add", f"{link.address}/{PREFIX}", "dev", "eth0")
            run(*ns, "ip", "link", "set", "eth0", "up")
            run(*ns, "ip", "link", "set", "lo", "up")
            # What the server sends the attendee leaves the bridge through the host end: the cap.
            run("tc", "qdisc", "add", "dev", link.host_end, "root", "tbf", "rate",
                f"{link.cap_kbps}kbit", "burst", "16kb", "latency", "200ms")  # fmt: skip
            link.chromium.write_text(f'#!/bin/sh\nexec ip netns exec {link.name} {CHROMIUM} "$@"\n')
            link.chromium.chmod(0o755)
        yield net
    finally:
        for link in net.links:
            subprocess.run(["ip", "netns", "del", link.name], capture_output=True)
            subprocess.run(["ip", "link", "del", link.host_end], capture_output=True)
            link.chromium.unlink(missing_ok=True)
        subprocess.run(["ip", "link", "del", net.bridge], capture_output=True)


def tc_counts(link: Link) -> tuple[int, int]:
    """Bytes the cap let through and packets it dropped, so far."""
    text = run("tc", "-s", "qdisc", "show", "dev", link.host_end)
    sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", text)
    assert sent, text
    return int(sent.group(1)), int(sent.group(3))


@contextlib.contextmanager
def dais_on(host_address: str, data_dir: Path, port: int) -> Iterator[DaisServer]:
    """Dais, with the demo event, serving on `host_address` (the bridge's) from `data_dir`."""
    base_url = f"http://{host_address}:{port}"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{data_dir / 'dais.db'}",
        data_dir=data_dir,
        secret_key="slow-links-secret",
        base_url=base_url,
    )
    # In a thread of its own (the migration runs an event loop too): the caller may be inside
    # an event loop (a test) or not (a bench).
    with ThreadPoolExecutor(1) as loader:
        loader.submit(upgrade, settings.resolved_database_url).result()
        loader.submit(lambda: asyncio.run(_load_demo(settings))).result()
    env = {
        **os.environ,
        "DAIS_DATABASE_URL": settings.resolved_database_url,
        "DAIS_DATA_DIR": str(data_dir),
        "DAIS_SECRET_KEY": settings.secret_key,
        "DAIS_BASE_URL": base_url,
    }
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
         "--host", host_address, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        try:
            wait_until_serving(base_url, process, 30)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{error}:\n{(data_dir / 'server.log').read_text()}") from error
        yield DaisServer(base_url=base_url, settings=settings)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# Runs in an attendee's page: every frame of the stage's (first) video, and each layer the page
# is told, with the page's clock in seconds.
WATCH = """() => {
  window.__frames = []; window.__layers = [];
  const seen = new WeakSet();
  const follow = () => {
    const video = document.querySelector('.stage-tiles video');
    if (video && !seen.has(video)) {
      seen.add(video);
      const step = (now, meta) => {
        window.__frames.push([performance.now() / 1000, meta.width]);
        video.requestVideoFrameCallback(step);
      };
      video.requestVideoFrameCallback(step);
    }
    const figure = document.querySelector('.stage-tiles figure');
    const layer = figure ? figure.dataset.layer || '' : '';
    const last = window.__layers[window.__layers.length - 1];
    if (!last || last[1] !== layer) window.__layers.push([performance.now() / 1000, layer]);
  };
  setInterval(follow, 50);
  return performance.now() / 1000;
}"""


def freezes(
    frames: list[tuple[float, int]], start: float, end: float
) -> tuple[float, float, float]:
    """(longest, total) stretch in [start, end] with no new frame for more than FREEZE_S, and
    when (from `start`) the longest began."""
    times = [start] + [t for t, _ in frames if start <= t <= end] + [end]
    gaps = [(b - a, a - start) for a, b in zip(times, times[1:], strict=False)]
    longest, at = max(gaps)
    return longest, sum(g for g, _ in gaps if g > FREEZE_S), at
