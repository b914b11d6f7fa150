"""Privacy: who is watching, and how long chat and questions are kept."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, inspect, select

from app.db import make_engine, make_sessionmaker, utcnow
from chat.models import Message, Question, RoomEvent
from chat.service import purge_expired
from tests.chat.conftest import Live, Server, World, make_world


async def test_attendees_see_how_many_watch_but_not_who(server: Server, world: World) -> None:
    """SECURITY 12: the attendee list is hidden from attendees by default; the count is shown."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    await Live.join(server, world.session_id, world.attendees[1])
    while True:
        frame = await ada.recv(3.0)
        if frame["type"] == "watching.changed" and frame["count"] == 2:
            break
    assert frame == {"type": "watching.changed", "seq": None, "count": 2, "people": None}


async def test_names_are_shown_when_the_event_allows(server: Server, database_url: str) -> None:
    world = await make_world(database_url, attendees_see_each_other=True)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    await Live.join(server, world.session_id, world.attendees[1])
    while True:
        frame = await ada.recv(3.0)
        if frame["type"] == "watching.changed" and frame["count"] == 2:
            break
    assert frame["people"] == ["Ada", "Bea"]


async def test_chat_and_questions_are_purged_after_the_retention_period(
    server: Server, database_url: str
) -> None:
    """SECURITY 13: chat and Q&A are purged after the event's retention period; nothing in the
    live tables stores an IP address, user agent or token."""
    world = await make_world(database_url, retention_days=7)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    await ada.ok("chat.send", text="old message")
    await ada.ok("question.ask", text="old question")
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            assert await purge_expired(db, now=utcnow()) == 0
            removed = await purge_expired(db, now=utcnow() + timedelta(days=8))
            assert removed == 4  # the message, the question, and the two logged events
            for model in (Message, Question, RoomEvent):
                assert await db.scalar(select(func.count()).select_from(model)) == 0

            def columns(connection):  # type: ignore[no-untyped-def]
                inspector = inspect(connection)
                return [
                    column["name"]
                    for table in inspector.get_table_names()
                    if table.startswith("live_")
                    for column in inspector.get_columns(table)
                ]

            names = await (await db.connection()).run_sync(columns)
            assert not [n for n in names if any(w in n for w in ("ip", "agent", "token"))]
    finally:
        await engine.dispose()
