"""Pushed frames written straight to a socket's transport, bypassing the ASGI send path.

The one place that knows uvicorn's websocket internals. Each event is encoded once into a whole
unmasked text frame (`text_frame`); `transport_of` finds the asyncio transport behind a socket's
ASGI `send` when it belongs to a protocol checked here, and returns None otherwise (another
server, a test client, permessage-deflate negotiated): the caller then keeps using ASGI sends.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from starlette.websockets import WebSocket

_FIN_TEXT = 0x81
_MAX_WRAPPERS = 8  # ASGI middlewares wrapping `send` that `transport_of` walks through


class WireError(RuntimeError):
    """uvicorn's websocket internals are not what this module was written against."""


def text_frame(text: str) -> bytes:
    """`text` as one complete, unmasked, uncompressed websocket text frame (RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", _FIN_TEXT, 126, size) + payload
    return struct.pack("!BBQ", _FIN_TEXT, 127, size) + payload


def _sansio_class() -> Any:
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    except ImportError:
        return None
    return WebSocketsSansIOProtocol


def self_check() -> None:
    """Fail loudly at startup if uvicorn's sans-I/O websocket protocol no longer has what the
    fast path reads (its transport, connection state) or no longer writes a frame with one
    `transport.write` (which is what lets our frames and its pings interleave whole)."""
    cls = _sansio_class()
    if cls is None:
        return  # uvicorn (or websockets) is not installed: every socket uses ASGI sends
    from websockets.protocol import Protocol, State

    init_names = set(cls.__init__.__code__.co_names)
    send_names = set(cls.send.__code__.co_names)
    ping_names = set(cls.send_keepalive_ping.__code__.co_names)
    missing = [
        name
        for name, names in (
            ("transport", init_names),
            ("conn", init_names),
            ("close_sent", init_names),
            ("disconnected", init_names),
            ("handshake_complete", init_names),
            ("data_to_send", send_names),
            ("write", send_names),
            ("data_to_send", ping_names),
            ("write", ping_names),
        )
        if name not in names
    ]
    if missing or not hasattr(State, "OPEN") or not hasattr(Protocol, "state"):
        raise WireError(
            f"uvicorn's {cls.__qualname__} changed ({', '.join(missing) or 'websockets State'}): "
            "re-check chat/wire.py against it before serving live sockets"
        )


def _protocol_of(send: Any, cls: type, depth: int = 0) -> Any | None:
    """The `cls` instance whose bound `send` sits at the bottom of the ASGI wrappers, found
    through the closures of the middlewares that wrap it."""
    owner = getattr(send, "__self__", None)
    if type(owner) is cls:
        return owner
    if depth >= _MAX_WRAPPERS:
        return None
    for cell in getattr(send, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(inner):
            found = _protocol_of(inner, cls, depth + 1)
            if found is not None:
                return found
    return None


def transport_of(websocket: WebSocket) -> asyncio.Transport | None:
    """The accepted socket's transport if frames may be written to it directly, else None."""
    cls = _sansio_class()
    if cls is None:
        return None
    protocol = _protocol_of(websocket._send, cls)
    if protocol is None:
        return None
    from websockets.protocol import State

    conn = protocol.conn
    transport = protocol.transport
    if (
        not protocol.handshake_complete
        or protocol.close_sent
        or protocol.disconnected
        or conn.state is not State.OPEN
        # Data frames written here bypass any extension; permessage-deflate stays off.
        or conn.extensions
        or transport is None
        or transport.is_closing()
    ):
        return None
    return transport
