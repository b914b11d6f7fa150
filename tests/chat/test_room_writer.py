"""A room that keeps up: its actions are applied in batches (chat/writer.py) with their order and
seqs exact, nothing a person sent is lost when a socket dies or the server restarts (the page
resends with the same key, applied once), a busy room says so, and a join stays small however
long the room's history."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from app.db import make_engine, make_sessionmaker, new_id, utcnow
from app.errors import Conflict
from chat.models import Message, Question, QuestionVote, Room, RoomEvent
from chat.service import position_cursor
from tests.chat.conftest import Live, Server, ServerFactory, World, hold_for_a_while
from tests.serving import dais_server

CHATTY = {"chat": (10_000, 600_000.0), "vote": (10_000, 600_000.0)}
JOIN_LIMIT = 32 * 1024


def key(*parts: object) -> str:
    """An idempotency key as a page makes one (8 to 64 of [A-Za-z0-9_-])."""
    return "key-" + "-".join(str(p) for p in parts) + "-0000"


async def drop(live: Live) -> None:
    """The network goes away under the tab: no close frame, the connection simply ends."""
    live.ws.transport.abort()
    await live.ws.wait_closed()


async def close_all(*tabs: Live) -> None:
    await asyncio.gather(*(tab.close() for tab in tabs))


async def stored(database_url: str, session_id: str) -> dict[str, Any]:
    """The room as stored: message texts with how often each is there, and the event seqs."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            texts = Counter(
                await db.scalars(select(Message.text).where(Message.session_id == session_id))
            )
            seqs = list(
                await db.scalars(
                    select(RoomEvent.seq)
                    .where(RoomEvent.session_id == session_id)
                    .order_by(RoomEvent.seq)
                )
            )
            questions = await db.scalar(
                select(func.count()).where(Question.session_id == session_id)
            )
            ids = {
                text: message_id
                for message_id, text in await db.execute(
                    select(Message.id, Message.text).where(Message.session_id == session_id)
                )
            }
    finally:
        await engine.dispose()
    return {"texts": texts, "seqs": seqs, "ids": ids, "questions": questions}


async def replies(live: Live, request_ids: set[int], timeout: float = 10.0) -> dict[int, Any]:
    """The replies to `request_ids`, whatever order they come in; events go to the inbox."""
    got: dict[int, Any] = {}
    while len(got) < len(request_ids):
        frame = json.loads(await asyncio.wait_for(live.ws.recv(), timeout))
        if frame.get("type") in ("ok", "error") and frame.get("id") in request_ids:
            got[frame["id"]] = frame
        else:
            live.inbox.append(frame)
    return got


async def test_sends_in_flight_when_a_socket_dies_are_applied_once_after_the_page_resends(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """SECURITY 15: Ada sends thirty messages and her connection drops at once, before any is
    answered. Her page joins again and sends all thirty again with the same keys: each is in the
    room exactly once, the ones applied before the drop answered with their original result, and
    Bea saw each posted once."""
    server = await start_server(live_rate_limits=CHATTY)
    bea = await Live.join(server, world.session_id, world.attendees[1])
    ada = await Live.join(server, world.session_id, world.attendees[0])
    texts = [f"hello from Leeds {i}" for i in range(30)]
    for i, text in enumerate(texts):
        await ada.send("chat.send", text=text, key=key("ada", i))
    await drop(ada)

    again = await Live.join(server, world.session_id, world.attendees[0])
    sent = {
        await again.send("chat.send", text=text, key=key("ada", i)): i
        for i, text in enumerate(texts)
    }
    answered = await replies(again, set(sent))
    assert all(reply["type"] == "ok" for reply in answered.values()), answered

    room = await stored(database_url, world.session_id)
    assert {t: n for t, n in room["texts"].items() if n != 1} == {}
    assert set(room["texts"]) == set(texts)
    for request_id, i in sent.items():
        # Applied before the drop or now: the answer names the one stored message.
        assert answered[request_id]["result"]["message"]["id"] == room["ids"][texts[i]]

    posted: list[str] = []
    while len(posted) < len(texts):
        frame = await bea.frame()
        if frame["type"] == "message.posted":
            posted.append(frame["message"]["text"])
    assert sorted(posted) == sorted(texts)
    await bea.nothing(0.5)
    await close_all(bea, again)


async def test_a_resend_after_the_server_restarts_is_applied_once(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """SECURITY 15: Ada's question reached the server, which stopped before her page saw the
    answer. The page sends it again to the restarted server with the same key: one question, and
    the same answer as the first time."""
    limits = json.dumps({"question": [100, 6000.0]})
    with dais_server(database_url, tmp_path, live_rate_limits=limits) as url:
        server = Server(url=url, settings=None, app=None)  # type: ignore[arg-type]
        ada = await Live.join(server, world.session_id, world.attendees[0])
        first = await ada.ok("question.ask", text="Is the recording kept?", key=key("q", 1))
        await drop(ada)  # the answer never reaches the page
    with dais_server(database_url, tmp_path, live_rate_limits=limits) as url:
        server = Server(url=url, settings=None, app=None)  # type: ignore[arg-type]
        ada = await Live.join(server, world.session_id, world.attendees[0])
        again = await ada.ok("question.ask", text="Is the recording kept?", key=key("q", 1))
        assert again == first
        assert [q["id"] for q in ada.joined["my_questions"]] == [first["question"]["id"]]
        # A new key is a new question.
        other = await ada.ok("question.ask", text="Is the recording kept?", key=key("q", 2))
        assert other["question"]["id"] != first["question"]["id"]
        await ada.close()
    assert (await stored(database_url, world.session_id))["questions"] == 2


async def test_order_and_seq_stay_exact_when_actions_are_applied_in_batches(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """SECURITY 15 and 16: twelve tabs post at once, each waiting for its answers, while some
    actions are refused (a vote for no question), and one fails after writing (an announcement
    whose handler is made to fail here), which rolls its batch back and applies the others
    again. The chair sees every message once, numbered 1, 2, 3 … with no gap, each tab's
    messages in the order it sent them; the stored events are the same; the failed announcement
    left nothing behind."""
    server = await start_server(live_rate_limits=CHATTY)
    gateway = server.app.state.live
    announce = gateway.handlers["announcement.post"]

    async def fails_after_writing(ctx: Any, action: Any) -> None:
        await announce.fn(ctx, action)
        # Its message, and the waiting rows of the batch's earlier actions, are written now.
        await ctx.write_batch()
        raise Conflict("test.failed", "Failed after writing.")

    gateway.handlers["announcement.post"] = replace(announce, fn=fails_after_writing)
    chair = await Live.join(server, world.session_id, world.chair)
    tabs = [
        await Live.join(server, world.session_id, token)
        for token in world.attendees
        for _ in range(4)
    ]
    per_tab = 25

    async def post(index: int, tab: Live) -> list[dict[str, Any]]:
        answers = []
        for n in range(per_tab):
            text = f"tab {index} message {n}"
            answers.append(await tab.request("chat.send", text=text, key=key(index, n)))
            if n % 5 == 0:
                refused = await tab.request("question.vote", question_id="nope")
                assert refused["code"] == "question.not_found"
        return answers

    async def announce_failing() -> list[dict[str, Any]]:
        await asyncio.sleep(0.05)
        return [await chair.request("announcement.post", text=f"doomed {n}") for n in range(5)]

    results = await asyncio.gather(
        *(post(i, tab) for i, tab in enumerate(tabs)), announce_failing()
    )
    for answers in results[:-1]:
        assert [a["type"] for a in answers] == ["ok"] * per_tab, answers
    assert [a["code"] for a in results[-1]] == ["test.failed"] * 5

    total = len(tabs) * per_tab
    seen: list[tuple[int, str]] = []
    while len(seen) < total:
        frame = await chair.frame()
        if frame["type"] == "message.posted":
            seen.append((frame["seq"], frame["message"]["text"]))
    seqs = [seq for seq, _ in seen]
    assert seqs == list(range(seqs[0], seqs[0] + total))
    for index in range(len(tabs)):
        mine = [text for _, text in seen if text.startswith(f"tab {index} ")]
        assert mine == [f"tab {index} message {n}" for n in range(per_tab)]

    await close_all(chair, *tabs)
    room = await stored(database_url, world.session_id)
    assert room["seqs"] == list(range(1, total + 1))
    assert sum(room["texts"].values()) == total
    assert not any(text.startswith("doomed") for text in room["texts"])


async def test_an_action_refused_after_adding_its_rows_leaves_nothing_and_its_batch_stands(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """A question is refused after its handler added its row (here made to fail just then),
    while other tabs post: it is answered with its error, nothing of it is stored, and every
    message of its batch is stored once, with no gap in the seqs."""
    server = await start_server(live_rate_limits=CHATTY | {"question": (100, 6000.0)})
    gateway = server.app.state.live
    ask = gateway.handlers["question.ask"]

    async def refused_after_adding(ctx: Any, action: Any) -> None:
        await ask.fn(ctx, action)
        raise Conflict("test.refused", "Refused after adding its row.")

    gateway.handlers["question.ask"] = replace(ask, fn=refused_after_adding)
    tabs = [await Live.join(server, world.session_id, token) for token in world.attendees]

    async def post(index: int, tab: Live) -> list[str]:
        codes = []
        for n in range(20):
            reply = await tab.request("chat.send", text=f"{index}/{n}", key=key(index, n))
            codes.append(reply["type"])
            if n % 4 == 0:
                reply = await tab.request("question.ask", text=f"why {index}/{n}?")
                codes.append(reply["code"])
        return codes

    results = await asyncio.gather(*(post(i, tab) for i, tab in enumerate(tabs)))
    for codes in results:
        assert codes == (["ok", "test.refused"] + ["ok"] * 3) * 5, codes
    await close_all(*tabs)
    room = await stored(database_url, world.session_id)
    assert sorted(room["texts"].values()) == [1] * (len(tabs) * 20)
    assert room["seqs"] == list(range(1, len(tabs) * 20 + 1))
    assert room["questions"] == 0


async def test_slow_mode_counts_a_message_sent_from_another_tab_in_the_same_batch(
    start_server: ServerFactory, world: World
) -> None:
    """Slow mode is on. Ada has four tabs open and sends from all of them at the same moment:
    one message goes through, the others are refused `rate_limited`, also when they are applied
    in one batch with it (its row is written before the others are checked)."""
    server = await start_server(live_rate_limits=CHATTY)
    chair = await Live.join(server, world.session_id, world.chair)
    await chair.ok("room.slow_mode", seconds=30)
    tabs = [await Live.join(server, world.session_id, world.attendees[0]) for _ in range(4)]
    replies_ = await asyncio.gather(
        *(
            tab.request("chat.send", text=f"hello {n}", key=key("slow", n))
            for n, tab in enumerate(tabs)
        )
    )
    assert sorted(r.get("code", r["type"]) for r in replies_) == ["ok"] + ["rate_limited"] * 3
    await close_all(chair, *tabs)


async def test_a_tab_sending_without_waiting_gets_its_replies_in_the_order_it_sent(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """Ada's page sends forty frames without waiting for any reply: messages (several of them
    in the room's writer at once), with a vote for no question, a history page with a bad
    cursor and, last, a frame that is not JSON among them. Every reply comes back in the order she sent the frames, and
    her messages are stored once each, in that order."""
    server = await start_server(live_rate_limits=CHATTY)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    sent: list[int] = []
    for n in range(40):
        if n % 10 == 3:
            sent.append(await ada.send("question.vote", question_id="nope", key=key("v", n)))
        elif n % 10 == 6:
            sent.append(await ada.send("room.history", part="messages", cursor="not-a-cursor"))
        else:
            sent.append(await ada.send("chat.send", text=f"in order {n}", key=key("o", n)))
    await ada.ws.send("not json")
    answered: list[Any] = []
    posted: list[str] = []
    while len(answered) < len(sent) + 1 or len(posted) < 32:
        frame = await ada.recv()
        if frame["type"] in ("ok", "error"):
            answered.append(frame.get("id"))
        elif frame["type"] == "message.posted":
            posted.append(frame["message"]["text"])
    assert answered == [*sent, None]
    assert posted == [f"in order {n}" for n in range(40) if n % 10 not in (3, 6)]
    await ada.close()
    room = await stored(database_url, world.session_id)
    assert sorted(room["texts"].values()) == [1] * 32


async def test_a_writer_waiting_for_the_files_write_lock_does_not_stop_the_server(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """Another program (another process on the same SQLite file, a backup; on PostgreSQL,
    another process's transaction on the room's row) holds the lock the room's writer needs for
    a second while Ada posts. Her message waits for the lock, is applied once it is free, and
    meanwhile the server goes on: the event loop never stops for the lock (on SQLite the
    writer's statements run on the loop's thread, so one waiting there would stop every
    socket), and Bea's second tab joins at once."""
    server = await start_server(live_rate_limits=CHATTY)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    await ada.ok("chat.send", text="before the lock", key=key("lock", 0))

    holder = await hold_for_a_while(
        database_url,
        select(Room.session_id).where(Room.session_id == world.session_id).with_for_update(),
    )
    loop = asyncio.get_running_loop()
    longest_gap = 0.0

    async def tick() -> None:
        nonlocal longest_gap
        last = loop.time()
        while not holder.done():
            await asyncio.sleep(0.01)
            longest_gap = max(longest_gap, loop.time() - (last + 0.01))
            last = loop.time()

    ticking = asyncio.create_task(tick())
    sent = loop.time()
    posting = asyncio.create_task(ada.ok("chat.send", text="during the lock", key=key("lock", 1)))
    await asyncio.sleep(0.2)
    assert not posting.done()  # it waits for the lock
    second_tab = await Live.join(server, world.session_id, world.attendees[1])
    assert loop.time() - sent < 0.8  # joined while the lock is still held
    assert second_tab.joined is not None
    assert [m["text"] for m in second_tab.joined["messages"]] == ["before the lock"]
    await posting
    assert loop.time() - sent >= 0.8
    await holder
    await ticking
    assert longest_gap < 0.3, f"the event loop stopped for {longest_gap:.2f} s"
    await close_all(ada, bea, second_tab)
    room = await stored(database_url, world.session_id)
    assert room["texts"] == {"before the lock": 1, "during the lock": 1}


async def test_a_busy_room_says_so_and_nothing_is_lost_when_the_page_sends_again(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """With room for three queued actions, eighteen tabs posting at once get `room.busy` for
    some of them, with a retry hint; sending those again after the hint, with the same keys,
    every message is in the room exactly once."""
    server = await start_server(live_rate_limits=CHATTY, live_room_queue_actions=3)
    tabs = [
        await Live.join(server, world.session_id, token)
        for token in world.attendees
        for _ in range(6)
    ]
    busy = 0

    async def post(index: int, tab: Live) -> None:
        nonlocal busy
        for n in range(10):
            while True:
                reply = await tab.request("chat.send", text=f"{index}/{n}", key=key(index, n))
                if reply["type"] == "ok":
                    break
                assert reply["code"] == "room.busy", reply
                assert 250 <= reply["retry_after_ms"] <= 5000
                busy += 1
                await asyncio.sleep(reply["retry_after_ms"] / 1000 / 10)

    await asyncio.gather(*(post(i, tab) for i, tab in enumerate(tabs)))
    assert busy > 0
    await close_all(*tabs)
    room = await stored(database_url, world.session_id)
    assert sorted(room["texts"].values()) == [1] * (len(tabs) * 10)


async def seed_history(database_url: str, world: World) -> None:
    """5,000 chat messages, 1,000 approved questions with votes and 1,000 waiting."""
    engine = make_engine(database_url)
    start = utcnow() - timedelta(hours=2)
    try:
        async with engine.begin() as db:
            await db.execute(
                insert(Message),
                [
                    {
                        "id": new_id(),
                        "session_id": world.session_id,
                        "author_id": world.attendee_ids[i % 3],
                        "author_name": "Ada",
                        "author_role": "attendee",
                        "kind": "chat",
                        # Some long, most short, some at the same instant as the one before.
                        "text": ("x" * 1900 if i % 97 == 0 else "history ") + str(i),
                        "status": "visible",
                        "created_at": start + timedelta(seconds=i - i % 2),
                    }
                    for i in range(5000)
                ],
            )
            questions = [
                {
                    "id": new_id(),
                    "session_id": world.session_id,
                    "asker_id": world.attendee_ids[i % 3],
                    "asker_name": "Bea",
                    "anonymous": False,
                    "text": f"question {i} " + "y" * 200,
                    "status": "approved" if i < 1000 else "pending",
                    "answered": False,
                    "votes": i % 7,
                    "created_at": start + timedelta(seconds=i),
                }
                for i in range(2000)
            ]
            await db.execute(insert(Question), questions)
            await db.execute(
                insert(QuestionVote),
                [
                    {"question_id": q["id"], "person_id": world.attendee_ids[0]}
                    for q in questions[:1000:3]
                ],
            )
    finally:
        await engine.dispose()


async def test_a_join_stays_small_however_long_the_history_and_the_rest_comes_on_demand(
    start_server: ServerFactory, world: World, database_url: str
) -> None:
    """With 5,000 messages, 1,000 approved questions and 1,000 waiting, an attendee's and the
    chair's join replies each stay under 32 KB. Paging back with `room.history` gives every
    message once, in order; paging the questions gives all 1,000 approved, most votes first,
    with Ada's votes; the chair pages the whole queue."""
    await seed_history(database_url, world)
    server = await start_server(live_rate_limits={"history": (1000, 60_000.0)})
    ada = await Live.connect(server, world.session_id)
    request_id = await ada.send("room.join", token=world.attendees[0])
    join = (await replies(ada, {request_id}))[request_id]
    size = len(json.dumps(join, separators=(",", ":")).encode())
    assert size <= JOIN_LIMIT, size
    result = join["result"]
    assert set(result["more"]) == {"messages", "questions"}

    messages = result["messages"]
    cursor = result["more"]["messages"]
    while cursor:
        page = await ada.ok("room.history", part="messages", cursor=cursor)
        messages = page["items"] + messages
        cursor = page["cursor"]
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            in_order = list(
                await db.scalars(
                    select(Message.id)
                    .where(Message.session_id == world.session_id)
                    .order_by(Message.created_at, Message.id)
                )
            )
    finally:
        await engine.dispose()
    assert [m["id"] for m in messages] == in_order

    questions, voted = result["questions"], set(result["voted"])
    cursor = result["more"]["questions"]
    while cursor:
        page = await ada.ok("room.history", part="questions", cursor=cursor)
        questions += page["items"]
        voted |= set(page["voted"])
        cursor = page["cursor"]
    assert len({q["id"] for q in questions}) == len(questions) == 1000
    assert [q["votes"] for q in questions] == sorted((q["votes"] for q in questions), reverse=True)
    assert len(voted) == len(range(0, 1000, 3))
    refused = await ada.request("room.history", part="queue", cursor=result["more"]["questions"])
    assert refused["code"] == "auth.forbidden"
    bad = await ada.request("room.history", part="messages", cursor="not a cursor")
    assert (bad["code"], bad["field"]) == ("request.invalid", "cursor")

    chair = await Live.connect(server, world.session_id)
    request_id = await chair.send("room.join", token=world.chair)
    join = (await replies(chair, {request_id}))[request_id]
    assert len(json.dumps(join, separators=(",", ":")).encode()) <= JOIN_LIMIT
    queue = join["result"]["queue"]
    cursor = join["result"]["more"]["queue"]
    while cursor:
        page = await chair.ok("room.history", part="queue", cursor=cursor)
        queue += page["items"]
        cursor = page["cursor"]
    assert len({q["id"] for q in queue}) == len(queue) == 1000
    # A cursor is only a position: a made-up one is answered, not trusted.
    made_up = position_cursor(utcnow(), "0" * 32)
    assert (await chair.ok("room.history", part="held", cursor=made_up))["items"] == []
    await close_all(ada, chair)
