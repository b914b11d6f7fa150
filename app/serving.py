"""How `dais serve` meets the network: uvicorn's HTTP/1.1 protocols with a deadline and a size
limit for each request head, so that clients sending their headers slowly (slowloris) cannot hold
connections open.

uvicorn closes idle keep-alive connections, but nothing closes a connection whose request head
never completes: a byte now and then cancels its keep-alive timer, and a connection that sends
nothing at all is never timed. Here a timer starts when a connection opens (and, between requests,
with the first byte of the next request) and is cancelled when the parser has the whole head.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, cast

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

# The parser names `dais serve` takes (DAIS_HTTP_PARSER); `auto` is httptools, as in uvicorn.
PARSERS = ("auto", "httptools", "h11")

_REFUSED = b"Request head too large.\n"
# How long a connection whose head was refused is drained before it is closed.
_LINGER_SECONDS = 2.0


class ServingConfig(uvicorn.Config):
    """uvicorn's configuration with the request-head deadline; the head size limit is uvicorn's own
    `h11_max_incomplete_event_size`, applied here to either parser. Pickled as is into each worker
    process when there are several."""

    def __init__(self, *args: Any, request_head_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_head_seconds = request_head_seconds


class RequestHeadDeadline(asyncio.Protocol):
    """Mixed in before one of uvicorn's HTTP/1.1 protocols (which provide `config`, `transport`,
    `loop`, `server_state` and `cycle`, the latest request's response cycle)."""

    config: uvicorn.Config  # a ServingConfig
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    server_state: ServerState
    cycle: Any

    # Bytes of the awaited request head received so far; None while a request is under way.
    _head_bytes: int | None = None
    # The response cycle that was current when the awaited head started: a new one means it came.
    _cycle_before: Any = None
    _head_timer: asyncio.TimerHandle | None = None
    # Set once a head is refused: what still arrives is read and dropped until the connection closes.
    _refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_head()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        limit = self.config.h11_max_incomplete_event_size or 16 * 1024
        # The parser is fed no more of an unfinished head than the limit, so neither parser ever
        # buffers more, and a head that arrives whole in one read is measured all the same.
        while data and self._head_bytes is not None:
            if self._head_timer is None:
                self._arm()  # the first byte of a keep-alive connection's next request
            room = limit - self._head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, data = data[:room], data[room:]
            self._head_bytes += len(piece)
            super().data_received(piece)  # type: ignore[safe-super]
            if self.transport.is_closing():
                return
            if self.cycle is not self._cycle_before or self.transport.get_protocol() is not self:
                # The whole head is in (a request under way, or a websocket that took over).
                self._head_bytes = None
                self._disarm()
        # After a websocket upgrade uvicorn's protocols drop what followed the head in the same
        # read; so does this.
        if data and self.transport.get_protocol() is self:
            super().data_received(data)  # type: ignore[safe-super]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        # Unless a pipelined request's head was already waiting, the next head is awaited: its
        # deadline starts with its first byte (until then uvicorn's keep-alive timeout runs).
        if not self.transport.is_closing() and self.cycle.response_complete:
            self._await_head()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._cycle_before = self.cycle

    def _arm(self) -> None:
        self._disarm()
        seconds = cast(ServingConfig, self.config).request_head_seconds
        self._head_timer = self.loop.call_later(seconds, self._close)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _close(self) -> None:
        # A head too slow gets no 408: whoever sends one this slowly is not waiting for an answer.
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self) -> None:
        headers = b"".join(
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            + headers
            + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\n" % len(_REFUSED)
            + b"connection: close\r\n\r\n"
            + _REFUSED
        )
        # Closing with unread bytes would reset the connection, and a reset can destroy the answer
        # before the client reads it; so the rest is read and dropped for a moment (as nginx's
        # lingering close does), or until the client closes its side.
        self._refused = True
        self._head_bytes = None
        self._disarm()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._head_timer = self.loop.call_later(_LINGER_SECONDS, self._close)


class H11RequestHeads(RequestHeadDeadline, H11Protocol):
    """uvicorn's pure-Python h11 protocol with the request-head deadline."""


class HttpToolsRequestHeads(RequestHeadDeadline, HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol with the request-head deadline."""


def http_protocol(parser: str) -> type[asyncio.Protocol]:
    """The protocol class for DAIS_HTTP_PARSER."""
    if parser not in PARSERS:
        sys.exit(f"Dais: DAIS_HTTP_PARSER must be one of {', '.join(PARSERS)}, not {parser!r}.")
    return H11RequestHeads if parser == "h11" else HttpToolsRequestHeads


def run(config: ServingConfig) -> None:
    """What `uvicorn.run` does with a configuration it built itself: one server in this process,
    or a supervisor of `config.workers` processes sharing one listening socket."""
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    config.load_app()
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
