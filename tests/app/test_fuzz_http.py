"""SECURITY.md line 10: schemathesis over the OpenAPI spec finds no 5xx, signed in or not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving import dais_server

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.slow
def test_fuzzed_http_requests_never_get_a_server_error(tmp_path):
    """SECURITY.md line 10: malformed HTTP bodies never yield a 5xx."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"
    with dais_server(database_url, tmp_path, "--demo", demo_password="fuzzing-password") as base:
        signed_in = httpx.post(
            f"{base}/api/auth/sign-in",
            json={"email": "events@westminster-insight.example", "password": "fuzzing-password"},
        )
        token = signed_in.cookies["dais_session"]
        run = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{base}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "20261128",
                "--exclude-path",
                "/api/auth/sign-out",
                "--header",
                f"Authorization: Bearer {token}",
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert run.returncode == 0, run.stdout[-4000:]
