"""Logging that keeps people out of the logs: no IP addresses, no tokens (SECURITY.md line 13)."""

from __future__ import annotations

import logging
import re
from typing import Any

_REDACTIONS = (
    # Invite links carry their token in the path.
    (re.compile(r"/invite/[^\s\"?]+"), "/invite/[token]"),
    # Query strings may carry anything a client chose to put there.
    (re.compile(r"\?[^\s\"]*"), "?[query]"),
    # ('127.0.0.1', 53422) as uvicorn prints a websocket's peer, then bare addresses.
    (re.compile(r"\('[0-9a-fA-F:.]+', \d+\)"), "[client]"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "[ip]"),
    (re.compile(r"\[(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\](?::\d+)?"), "[ip]"),
    # Bare IPv6: a "::" or at least six groups, so clock times like 12:30:00 stay.
    (re.compile(r"\b(?:[0-9a-fA-F]{1,4}:){5,7}[0-9a-fA-F]{1,4}\b"), "[ip]"),
    (
        re.compile(r"(?<![\w:])[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{1,4})*::[0-9a-fA-F:]*[0-9a-fA-F]"),
        "[ip]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    """Renders each record once, with addresses and tokens taken out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # (client_addr, method, path, http_version, status): drop the client entirely.
            _, method, path, version, status = record.args
            record.msg = '%s "%s %s HTTP/%s" %s'
            record.args = ("-", method, redact(str(path)), version, status)
            return True
        message = record.getMessage()
        # The server's own listening address is not a person's.
        record.msg = message if message.startswith("Uvicorn running on") else redact(message)
        record.args = ()
        return True


def log_config() -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": Redact}},
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "app": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "chat": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "streaming": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            # Named for the service rather than the module (`dais.chat`, `dais.chat.stage`, ...).
            "dais": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
