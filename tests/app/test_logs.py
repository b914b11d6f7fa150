"""SECURITY.md line 13: the server's logs hold no IP addresses and no tokens."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from app.logs import log_config, redact
from tests.serving import dais_server


def test_addresses_and_tokens_are_taken_out_of_log_lines():
    assert redact("('127.0.0.1', 53422) - \"WebSocket /api/sessions/x/live\" [accepted]") == (
        '[client] - "WebSocket /api/sessions/x/live" [accepted]'
    )
    assert redact("GET /invite/abc.def HTTP/1.1") == "GET /invite/[token] HTTP/1.1"
    assert redact("from 10.1.2.3:443 and [2001:db8::1]:80") == "from [ip] and [ip]"
    assert redact("/api/events?token=secret") == "/api/events?[query]"
    assert redact("peer fe80::1ff:fe23:4567:890a left at 12:30:00") == "peer [ip] left at 12:30:00"


def test_every_logger_dais_names_is_redacted_and_keeps_info():
    """SECURITY.md line 13: every logger the code names (by module or as `dais.*`) is configured
    to go through the redacting handler, with its time and level, INFO and above; one left out
    would print bare and unredacted through logging's last resort."""
    root = Path(__file__).resolve().parents[2]
    names = {"app.main", "chat.gateway", "streaming.server"}
    for package in ("app", "chat", "streaming"):
        for path in (root / package).rglob("*.py"):
            names |= set(re.findall(r'getLogger\("([^"]+)"\)', path.read_text()))
    assert any(name.startswith("dais.") for name in names)
    config = log_config()
    assert "redact" in config["handlers"]["stderr"]["filters"]
    for name in sorted(names):
        parts = name.split(".")
        owners = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        owner = next((o for o in owners if config["loggers"].get(o, {}).get("handlers")), None)
        assert owner is not None, f"{name} is not configured: it would log bare, unredacted"
        assert config["loggers"][owner] == {
            "handlers": ["stderr"],
            "level": "INFO",
            "propagate": False,
        }, name


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
