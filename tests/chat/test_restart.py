"""SECURITY.md line 19: killing and restarting the server loses nothing that was acknowledged."""

from __future__ import annotations

import json

import websockets

from tests.chat.conftest import World
from tests.serving import dais_process, free_port


async def _join(url: str, origin: str, token: str, **fields: object):
    ws = await websockets.connect(url, origin=origin, open_timeout=5)  # type: ignore[arg-type]
    await ws.send(json.dumps({"id": 1, "type": "room.join", "token": token, **fields}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("id") == 1:
            assert frame["type"] == "ok", frame
            return ws, frame["result"]


async def test_acknowledged_messages_survive_a_killed_server(database_url, tmp_path, world: World):
    """SECURITY.md line 19: what was acknowledged before `kill -9` is there after the restart,
    and a client resuming from its last seq misses nothing."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/api/sessions/{world.session_id}/live"
    with dais_process(database_url, tmp_path, port) as server:
        ws, joined = await _join(url, origin, world.attendees[0])
        last_seq = joined["seq"]
        for n in range(5):
            await ws.send(json.dumps({"id": 10 + n, "type": "chat.send", "text": f"before {n}"}))
        acked = posted = 0
        while acked < 5 or posted < 5:
            frame = json.loads(await ws.recv())
            acked += frame.get("type") == "ok"
            if frame.get("type") == "message.posted":
                posted += 1
                last_seq = frame["seq"]
        server.kill()  # no shutdown, no flush: as if the machine lost power
        server.wait(timeout=10)
    with dais_process(database_url, tmp_path, port):
        fresh, state = await _join(url, origin, world.attendees[1])
        assert [m["text"] for m in state["messages"]] == [f"before {n}" for n in range(5)]
        resumed, result = await _join(url, origin, world.attendees[0], last_seq=last_seq)
        assert result["resumed"] is True and result["seq"] == last_seq
        await fresh.close()
        await resumed.close()
