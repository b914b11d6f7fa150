"""Abuse resistance: oversized and malformed frames, and readers that stop reading."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket

import websockets

from tests.chat.conftest import ANY, Live, Server, ServerFactory, World


async def test_frame_over_16_kib_closes_only_that_socket_with_1009(
    server: Server, world: World
) -> None:
    """SECURITY 6: a frame over 16 KiB closes that socket (1009) and leaves the room unchanged."""
    assert server.settings.live_max_frame_bytes == 16 * 1024
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    await ada.send("chat.send", text="x" * (16 * 1024))
    assert await ada.closed() == 1009
    await bea.nothing()
    await bea.ok("chat.send", text="still here")
    late = await Live.join(server, world.session_id, world.attendees[2])
    assert late.joined is not None
    assert [m["text"] for m in late.joined["messages"]] == ["still here"]


async def test_malformed_frames_get_error_frames_and_the_socket_stays_usable(
    server: Server, world: World
) -> None:
    """SECURITY 10: malformed input yields stable error codes, never a crash or a closed socket."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    cases = [
        ("not json", None, "request.invalid"),
        ("[1, 2, 3]", None, "request.invalid"),
        ('{"id": 7}', 7, "request.unknown_type"),
        ('{"id": 8, "type": "chat.shout", "text": "hi"}', 8, "request.unknown_type"),
        ('{"id": 9, "type": "chat.send"}', 9, "request.invalid"),
        ('{"id": 10, "type": "chat.send", "text": ""}', 10, "request.invalid"),
        ('{"id": 11, "type": "chat.send", "text": "hi", "extra": 1}', 11, "request.invalid"),
        ('{"id": 12, "type": "question.vote", "question_id": 5}', 12, "request.invalid"),
        ('{"id": 13, "type": "poll.vote", "poll_id": "x", "option": -1}', 13, "request.invalid"),
        ('{"id": {"a": 1}, "type": "chat.send", "text": "hi"}', None, "request.invalid"),
        ('{"id": 14, "type": "room.join"}', 14, "room.already_joined"),
        ('{"id": 15, "type": "question.approve", "question_id": "nope"}', 15, "auth.forbidden"),
        ('{"id": 16, "type": "question.vote", "question_id": "nope"}', 16, "question.not_found"),
    ]
    for text, request_id, code in cases:
        await ada.ws.send(text)
        reply = await ada.frame()
        assert reply == {
            "type": "error",
            "id": request_id,
            "code": code,
            "message": ANY,
            "field": ANY,
        }
    await ada.ws.send(b"\x00\x01binary")
    assert (await ada.frame())["code"] == "request.invalid"
    await ada.ok("chat.send", text="still fine")


async def test_stalled_reader_is_dropped_1013_without_delaying_others(
    start_server: ServerFactory, world: World
) -> None:
    """SECURITY 17: a reader that stops reading fills its bounded queue and is dropped with 1013;
    everyone else keeps getting every event promptly."""
    server = await start_server(live_queue_frames=8, send_buffer=16 * 1024)
    rooms = server.app.state.live.rooms
    # A small receive buffer, and the client library stops reading after one queued message.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = server.url.removeprefix("http://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    stalled_ws = await websockets.connect(
        server.live_url(world.session_id),
        sock=sock,
        origin=server.origin,  # type: ignore[arg-type]
        max_queue=1,
    )
    stalled = Live(stalled_ws)
    await stalled.ok("room.join", token=world.attendees[0])
    ada = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    stalled_id = next(
        c.id
        for c in rooms.room(world.session_id).connections.values()
        if c.person_id == world.attendee_ids[0]
    )
    # Written straight to its transport under uvicorn (chat/wire.py), as in `dais serve`.
    assert rooms.connection(stalled_id).direct  # type: ignore[union-attr]

    posted = 0
    loop = asyncio.get_running_loop()
    while rooms.connection(stalled_id) is not None:
        assert posted < 400, "the stalled reader was never dropped"
        sent_at = loop.time()
        # Incompressible text: the socket may negotiate permessage-deflate.
        await chair.ok("announcement.post", text=f"{posted} " + secrets.token_urlsafe(1400))
        frame = await ada.event("announcement.posted", timeout=2.0)
        assert frame["message"]["text"].startswith(f"{posted} ")
        assert loop.time() - sent_at < 1.0
        posted += 1
    assert posted > 8

    # Once it reads again, it finds what had reached it, then the close frame. That may be every
    # announcement: the one that filled its budget can be written (into the kernel's buffers)
    # before the drop, with the close frame queued behind it.
    received = 0
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(stalled_ws.recv(), 5))
            received += frame["type"] == "announcement.posted"
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1013
    assert received <= posted
