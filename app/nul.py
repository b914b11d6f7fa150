"""NUL characters (U+0000) in what people send: PostgreSQL's text cannot hold one, so a request
carrying one (in its path, its query or a JSON body) is refused with 422 `request.invalid` naming
where it was, before any of it reaches the database. The live socket's frames are checked by
`chat.protocol.parse_action` with `nul_field` below.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import Invalid

MESSAGE = "Text cannot contain NUL characters."
# A JSON string's \u0000 escape, not itself escaped (`\\u0000` is a backslash and "u0000").
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def nul_field(value: Any, path: tuple[str, ...] = ()) -> str | None:
    """The dotted path of the first string (or key) in parsed JSON holding a NUL, if any."""
    if isinstance(value, str):
        return ".".join(path) or "body" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return ".".join((*path, key.replace("\x00", ""))) or "body"
            found = nul_field(item, (*path, str(key)))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_field(item, (*path, str(index)))
            if found is not None:
                return found
    return None


class RefuseNul:
    """ASGI middleware: 422 for NUL in a request's path, query or JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await _refuse(scope, receive, send, "path")
            return
        if b"%00" in scope["query_string"].lower():
            await _refuse(scope, receive, send, _query_field(scope["query_string"]))
            return
        headers = dict(scope["headers"])
        if b"json" not in headers.get(b"content-type", b""):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if _ESCAPED_NUL.search(body):
            try:
                field = nul_field(json.loads(body))
            except (ValueError, RecursionError):
                field = None  # not JSON the app will take either: it answers that
            if field is not None:
                await _refuse(scope, receive, send, field)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _query_field(query: bytes) -> str:
    """The name of the query parameter holding a NUL ("query" if it is in a name)."""
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in value and "\x00" not in name:
            return name
    return "query"


async def _refuse(scope: Scope, receive: Receive, send: Send, field: str) -> None:
    # The body app.main gives every DomainError (this runs outside its exception handlers).
    error = Invalid("request.invalid", MESSAGE, field=field)
    await JSONResponse({"error": error.to_dict()}, status_code=error.status)(scope, receive, send)
