"""SECURITY.md line 13: the server's logs hold no IP addresses and no tokens."""

from __future__ import annotations

import httpx

from app.logs import redact
from tests.serving import dais_server


def test_addresses_and_tokens_are_taken_out_of_log_lines():
    assert redact("('127.0.0.1', 53422) - \"WebSocket /api/sessions/x/live\" [accepted]") == (
        '[client] - "WebSocket /api/sessions/x/live" [accepted]'
    )
    assert redact("GET /invite/abc.def HTTP/1.1") == "GET /invite/[token] HTTP/1.1"
    assert redact("from 10.1.2.3:443 and [2001:db8::1]:80") == "from [ip] and [ip]"
    assert redact("/api/events?token=secret") == "/api/events?[query]"
    assert redact("peer fe80::1ff:fe23:4567:890a left at 12:30:00") == "peer [ip] left at 12:30:00"


def test_a_served_request_leaves_no_address_or_token_in_the_log(tmp_path):
    """SECURITY.md line 13: tokens and addresses never reach the log."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'logs.db'}"
    with dais_server(database_url, tmp_path, "--demo") as base:
        with httpx.Client(base_url=base) as browser:
            invite = "0123456789abcdef0123456789abcdef.fedcba9876543210fedcba9876543210"
            assert browser.get(f"/invite/{invite}").status_code == 404
            registered = browser.post(
                "/api/events/tackling-stalking/register", json={"display_name": "Sam"}
            )
            token = registered.cookies["dais_session"]
            browser.get("/api/auth/me?secret=hush")
    # The server's own listening address may be logged; nobody else's.
    log = "\n".join(
        line
        for line in next(tmp_path.glob("dais-*.log")).read_text().splitlines()
        if "Uvicorn running on" not in line
    )
    assert '"GET /invite/[token] HTTP/1.1" 404' in log
    for secret in ("127.0.0.1:", invite, token, "hush"):
        assert secret not in log, secret
