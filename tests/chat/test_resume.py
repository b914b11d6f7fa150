"""Reconnecting: a client that says what it saw last gets exactly what it missed."""

from __future__ import annotations

from tests.chat.conftest import ANY, Live, Server, ServerFactory, World


async def test_resume_replays_exactly_the_missed_events_in_order_without_moderated_ones(
    server: Server, world: World
) -> None:
    """SECURITY 16: resuming from the last seq gives the missed events, in order, leaving out a
    deleted message and staff-only events; live events follow without duplicates."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    assert ada.joined is not None
    last_seq = ada.joined["seq"]
    await ada.close()

    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    kept = (await bea.ok("chat.send", text="kept"))["message"]["id"]
    unkind = (await bea.ok("chat.send", text="unkind"))["message"]["id"]
    await chair.ok("message.delete", message_id=unkind)
    question_id = (await bea.ok("question.ask", text="A fair question"))["question"]["id"]
    await chair.ok("question.approve", question_id=question_id)

    back = await Live.join(server, world.session_id, world.attendees[0], last_seq=last_seq)
    assert back.joined is not None and back.joined["resumed"] is True
    missed = [await back.frame() for _ in range(3)]
    assert [(f["type"], f.get("message", {}).get("id") or f.get("message_id")) for f in missed] == [
        ("message.posted", kept),
        ("message.deleted", unkind),
        ("question.approved", None),
    ]
    assert missed[2]["question"]["id"] == question_id
    seqs = [f["seq"] for f in missed]
    assert seqs == sorted(seqs) and seqs[-1] == back.joined["seq"]
    await back.nothing()
    await bea.ok("chat.send", text="after")
    assert (await back.event("message.posted"))["message"]["text"] == "after"
    await back.nothing()


async def test_resume_from_the_current_seq_gets_nothing(server: Server, world: World) -> None:
    """SECURITY 16: nothing missed, nothing replayed."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    await ada.ok("chat.send", text="hello")
    seq = (await ada.event("message.posted"))["seq"]
    back = await Live.join(server, world.session_id, world.attendees[0], last_seq=seq)
    assert back.joined == {
        "seq": seq,
        "resumed": True,
        "you": ANY,
        "room": ANY,
        "watching": ANY,
        "messages": [],
        "questions": [],
        "my_questions": [],
        "voted": [],
        "polls": [],
        "queue": None,
        "held": None,
        "stage": {"live": [], "presenters": [], "ended": False},
        "green_room": None,
        "more": {},
    }
    await back.nothing()


async def test_resume_outside_the_replay_window_is_told_to_resync(
    start_server: ServerFactory, world: World
) -> None:
    """SECURITY 16: too far behind (or ahead), the client gets `resync.required` and the state."""
    server = await start_server(live_replay_events=3)
    bea = await Live.join(server, world.session_id, world.attendees[1])
    for n in range(5):
        await bea.ok("chat.send", text=f"m{n}")
    ada = await Live.connect(server, world.session_id)
    request_id = await ada.send("room.join", token=world.attendees[0], last_seq=0)
    assert await ada.frame() == {"type": "resync.required", "seq": None}
    joined = await ada.frame()
    assert joined["type"] == "ok" and joined["id"] == request_id
    assert joined["result"]["resumed"] is False
    assert [m["text"] for m in joined["result"]["messages"]] == [f"m{n}" for n in range(5)]

    future = await Live.connect(server, world.session_id)
    await future.send("room.join", token=world.attendees[0], last_seq=999)
    assert (await future.frame())["type"] == "resync.required"
