"""The media port onto this process's `MediaServer`: each typed command of `streaming.port` run as
the server's method, its result and the stage afterwards returned as the port's types. Stage
hosting (`chat.stage_hosts`) is given one by the composition root and runs commands for sessions
this process hosts through it, whether they came from this process's sockets or another's.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from .port import (
    Answer,
    Answered,
    AskQuality,
    CloseConnection,
    Closed,
    Command,
    Describe,
    EndSession,
    Mute,
    Offer,
    Outcome,
    Publish,
    Quality,
    SetLive,
    Watch,
)
from .server import MediaServer

R = TypeVar("R")

# Negotiations (publish, watch, answer) this process works on at once: each is a few ms of CPU on
# the event loop (a peer connection, its m-lines, SDP, DTLS set-up), so a burst of them (a keynote
# starting, everyone pressing play) goes through one at a time and leaves the loop to the rooms.
NEGOTIATIONS_AT_ONCE = 1
NEGOTIATIONS = (Publish, Watch, Answer)


class LocalMedia:
    """The port onto this process's `MediaServer`."""

    def __init__(self, server: MediaServer) -> None:
        self.server = server
        self._negotiating = asyncio.Semaphore(NEGOTIATIONS_AT_ONCE)

    def hosts(self, session_id: str) -> bool:
        return self.server.hosts(session_id)

    async def run(self, command: Command[R]) -> Outcome[R]:
        negotiation = isinstance(command, NEGOTIATIONS)
        if negotiation:
            async with self._negotiating:
                return await self._run(command)
        return await self._run(command)

    async def _run(self, command: Command[R]) -> Outcome[R]:
        server = self.server
        result: Any = None
        match command:
            case Publish():
                answered = await server.publish(
                    session_id=command.session_id,
                    person_id=command.person_id,
                    connection_id=command.connection_id,
                    may_publish=command.may_publish,
                    sdp=command.sdp,
                )
                result = Answered(peer_id=answered["peer_id"], sdp=answered["sdp"])
            case Watch():
                offered = await server.watch(
                    session_id=command.session_id,
                    person_id=command.person_id,
                    connection_id=command.connection_id,
                    sees_green_room=command.sees_green_room,
                    audio_only=command.audio_only,
                )
                result = Offer(offered["peer_id"], offered["sdp"], tuple(offered["tracks"]))
            case Answer():
                await server.answer(
                    connection_id=command.connection_id, peer_id=command.peer_id, sdp=command.sdp
                )
            case SetLive():
                await server.set_live(
                    session_id=command.session_id, person_id=command.person_id, live=command.live
                )
            case Mute():
                await server.set_muted(
                    session_id=command.session_id,
                    person_id=command.person_id,
                    kind=command.kind,
                    muted=command.muted,
                )
            case EndSession():
                await server.end_session(command.session_id)
            case Describe():
                pass
            case AskQuality():
                result = Quality(tuple(server.quality(command.connection_id)))
            case CloseConnection():
                before = server.snapshot(command.session_id).presenters
                await server.close_connection(command.connection_id)
                result = Closed(server.snapshot(command.session_id).presenters != before)
            case _:
                raise TypeError(f"not a media command: {type(command).__qualname__}")
        return Outcome(result, server.snapshot(command.session_id))
