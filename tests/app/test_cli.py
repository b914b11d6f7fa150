"""A new user's first run: `dais serve --demo` migrates, loads the demo, prints links and serves."""

from __future__ import annotations

import re
import subprocess
import time

import httpx

from tests.serving import DAIS, dais_env, free_port


def test_serve_prints_working_links_for_the_demo_event(database_url, tmp_path):
    port = free_port()
    server = subprocess.Popen(
        [*DAIS, "serve", "--demo", "--port", str(port)],
        env=dais_env(database_url, tmp_path, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = []
        deadline = time.monotonic() + 60
        assert server.stdout is not None
        while time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            printed.append(line)
            if "Application startup complete" in line:
                break
        output = "".join(printed)
        base = f"http://127.0.0.1:{port}"
        assert f"Event:              {base}/e/tackling-stalking" in output, output
        assert f"{base}/docs" in output
        organiser = re.search(r"Organiser sign-in: +\S+ +\((\S+) / (\S+)\)", output)
        assert organiser, output
        chair = re.search(r"Chair Saskia Garner: +(\S+)", output)
        assert chair, output
        assert output.count("Speaker ") == 5

        with httpx.Client(base_url=base) as browser:
            events = browser.get("/api/events").json()
            assert [e["slug"] for e in events] == ["tackling-stalking"]
            assert browser.get("/docs").status_code == 200
            signed_in = browser.post(
                "/api/auth/sign-in",
                json={"email": organiser.group(1), "password": organiser.group(2)},
            )
            assert signed_in.status_code == 200
        with httpx.Client(base_url=base) as chair_browser:
            opened = chair_browser.post(chair.group(1).removeprefix(base))
            assert opened.status_code == 303
            assert set(chair_browser.get("/api/auth/me").json()["roles"].values()) == {"chair"}
    finally:
        server.terminate()
        server.wait(timeout=15)
        if server.stdout is not None:
            server.stdout.close()


def test_create_organiser_from_the_command_line(database_url, tmp_path):
    def create(email: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *DAIS,
                "create-organiser",
                "--email",
                email,
                "--name",
                "Ops",
                "--password",
                "a long enough password",
            ],
            env=dais_env(database_url, tmp_path, 8000),
            capture_output=True,
            text=True,
            timeout=60,
        )

    made = create("Ops@Example.org")
    assert made.returncode == 0, made.stderr
    assert "organiser ops@example.org created" in made.stdout.lower()
    again = create("ops@example.org")
    assert again.returncode != 0 and "exists" in again.stderr


def test_several_workers_without_redis_are_refused(database_url, tmp_path):
    """Without a shared bus each worker would hold half a room and half a stage."""
    port = free_port()
    refused = subprocess.run(
        [*DAIS, "serve", "--workers", "2", "--port", str(port)],
        env=dais_env(database_url, tmp_path, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "--workers above 1 needs DAIS_BUS_URL=redis://" in refused.stderr
