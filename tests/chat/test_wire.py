"""Frames written straight to the transport: under uvicorn every frame of a socket takes the
direct path, arrives whole and in order between uvicorn's own pings and pongs, and a socket that
stops reading is dropped with 1013 while everyone else keeps receiving."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest
import websockets
from fastapi import WebSocket
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from chat import wire
from chat.connection import Connection, Cork
from chat.roles import Role
from tests.chat.conftest import Live, ServerFactory, World


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_a_frame_encoded_once_parses_as_the_same_text_in_websockets_own_reader(size: int) -> None:
    text = "é" * (size // 2) + "x" * (size % 2)
    reader = StreamReader()
    reader.feed_data(wire.text_frame(text))
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
        while True:
            next(parser)
    except StopIteration as done:
        frame = done.value
    assert frame.opcode is Opcode.TEXT and frame.fin and not frame.rsv1
    assert frame.data.decode() == text


async def test_under_uvicorn_events_and_replies_go_straight_to_the_socket_in_order(
    start_server: ServerFactory, world: World
) -> None:
    """Ada and Bea watch while the chair posts 150 announcements of different sizes; the server
    pings every 20 ms and the attendees' clients ping it too, so control frames interleave.
    Every announcement arrives once, whole and in order, and no frame took the ASGI path."""
    server = await start_server(ping_interval=0.02)
    rooms = server.app.state.live.rooms
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.connect(server, world.session_id, ping_interval=0.01)
    await bea.ok("room.join", token=world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)

    sizes = [1, 100, 120, 122, 1990, 300, 7] * 22
    for n, size in enumerate(sizes[:150]):
        await chair.ok("announcement.post", text=f"{n:03d} " + "y" * size)
    for person in (ada, bea):
        seqs = []
        for n, size in enumerate(sizes[:150]):
            frame = await person.event("announcement.posted")
            assert frame["message"]["text"] == f"{n:03d} " + "y" * size
            seqs.append(frame["seq"])
        assert seqs == sorted(seqs) and len(set(seqs)) == 150
        await person.nothing(0.2)

    connections = list(rooms.room(world.session_id).connections.values())
    assert len(connections) == 3
    for conn in connections:
        assert conn.direct
        # The join reply, and for the chair its 150 `ok`s, came the same way as the events.
        assert conn.written >= 151
        assert not conn._outbox


async def test_a_stalled_direct_reader_is_dropped_1013_while_others_keep_receiving(
    start_server: ServerFactory, world: World
) -> None:
    """A client that stops reading its socket at the kernel: once more than its byte budget is
    unsent the server drops it with 1013 (the close follows what it had not read), and Ada gets
    every announcement promptly throughout."""
    server = await start_server(live_queue_frames=8, send_buffer=16 * 1024)
    rooms = server.app.state.live.rooms
    stalled = await Live.join(server, world.session_id, world.attendees[0])
    ada = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    stalled_conn = next(
        c
        for c in rooms.room(world.session_id).connections.values()
        if c.person_id == world.attendee_ids[0]
    )
    assert stalled_conn.direct
    stalled.ws.transport.pause_reading()

    loop = asyncio.get_running_loop()
    posted = 0
    while rooms.connection(stalled_conn.id) is not None:
        assert posted < 400, "the stalled reader was never dropped"
        sent_at = loop.time()
        await chair.ok("announcement.post", text=f"{posted} " + "z" * 1990)
        frame = await ada.event("announcement.posted", timeout=2.0)
        assert frame["message"]["text"].startswith(f"{posted} ")
        assert loop.time() - sent_at < 1.0
        posted += 1
    assert stalled_conn.closing == (1013, "too.slow")

    stalled.ws.transport.resume_reading()
    received = []
    code = None
    try:
        while True:
            frame = await stalled.recv(5)
            if frame["type"] == "announcement.posted":
                received.append(int(frame["message"]["text"].split()[0]))
    except websockets.ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd is not None else None
    assert code == 1013
    # What reached it is a prefix of what was posted: nothing lost in the middle, nothing torn.
    assert received == list(range(len(received))) and len(received) < posted


async def test_with_permessage_deflate_the_gateway_keeps_the_asgi_send_path(
    start_server: ServerFactory, world: World
) -> None:
    """A server that negotiates compression cannot take ready-made uncompressed frames: its
    sockets fall back to ASGI sends, and the conversation is the same."""
    server = await start_server(deflate=True)
    rooms = server.app.state.live.rooms
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    assert ada.ws.protocol.extensions, "the client did not negotiate permessage-deflate"
    await chair.ok("announcement.post", text="compressed, through ASGI")
    frame = await ada.event("announcement.posted")
    assert frame["message"]["text"] == "compressed, through ASGI"
    for conn in rooms.room(world.session_id).connections.values():
        assert not conn.direct and conn.written == 0


class Transport:
    """Stands in for a socket's transport: keeps what is written."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def texts_of(data: bytes) -> list[str]:
    """The text frames in `data`, in order (websockets' own reader)."""
    reader = StreamReader()
    reader.feed_data(data)
    texts = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            texts.append(done.value.data.decode())
    return texts


def direct_connection() -> tuple[Connection, Transport]:
    transport = Transport()
    websocket = cast(WebSocket, SimpleNamespace(_send=None))  # not under uvicorn: no transport
    conn = Connection(websocket, session_id="s", limit=64, cork=Cork(0.001))
    conn._transport = cast(asyncio.Transport, transport)  # as under uvicorn (chat/wire.py)
    return conn, transport


async def test_a_batchs_broadcasts_reach_a_socket_in_one_write_each_once_and_in_order() -> None:
    """A room's batch of five events goes to a watching socket in one write; a socket that
    resumed with the batch's third event already in its replay gets only the two after it; a
    socket still joining gets them after its join state, in order."""
    batch = [(f'{{"type":"e","seq":{seq}}}', seq) for seq in range(10, 15)]
    frames = [(text, seq, wire.text_frame(text)) for text, seq in batch]
    data = b"".join(one for _, _, one in frames)

    watching, watching_out = direct_connection()
    resumed, resumed_out = direct_connection()
    resumed.identify(person_id="bea", name="Bea", role=Role.attendee)
    resumed.release(12)
    joining, joining_out = direct_connection()
    joining.identify(person_id="cy", name="Cy", role=Role.attendee)
    for conn in (watching, resumed, joining):
        conn.push_many(frames, data, 10)
    joining.reply('{"type":"ok","id":1}')
    joining.release(9)
    await asyncio.sleep(0.02)

    everything = [text for text, _ in batch]
    assert watching_out.writes == [data]
    assert texts_of(b"".join(resumed_out.writes)) == everything[3:]
    assert texts_of(b"".join(joining_out.writes)) == ['{"type":"ok","id":1}', *everything]
