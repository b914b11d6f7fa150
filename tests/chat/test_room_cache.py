"""What every live action re-reads (the session's and event's settings, the room's sanctions) is
kept per room, and forgotten when it changes: by a moderator over the socket, or by the organiser
over HTTP, on every server process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.chat.conftest import Live, Server, ServerFactory, World
from tests.chat.test_revocation import organiser_api
from tests.conftest import REDIS_URL
from tests.serving import dais_server

# Enough chat for one story (the default allows 5 messages in 30 s).
CHATTY = '{"chat": [100, 1.0]}'


async def skip_to(live: Live, type_: str) -> dict[str, Any]:
    """The next frame of `type_`, passing over any other before it."""
    while True:
        frame = await live.frame()
        if frame["type"] == type_:
            return frame


@contextmanager
def statements(server: Server) -> Iterator[list[str]]:
    """Every SQL statement the server runs while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = server.app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reads_settings(statement: str) -> bool:
    return statement.startswith("SELECT") and any(
        f"FROM {table}" in statement
        for table in ("sessions", "events", "live_rooms", "live_sanctions")
    )


async def test_a_chat_post_reads_no_settings_once_the_room_is_known(
    start_server: ServerFactory, world: World
) -> None:
    """Ada posts five messages: after the first action of the room, no post reads the room, the
    session, the event or the sanctions again (only writes). The chair mutes Bea: her
    next post is refused at once, and accepted again once she is unmuted."""
    server = await start_server(live_rate_limits={"chat": (100, 1.0)})
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    await ada.ok("chat.send", text="first")
    with statements(server) as seen:
        for n in range(5):
            await ada.ok("chat.send", text=f"hello {n}")
    assert seen and not [s for s in seen if reads_settings(s)], seen
    loads = server.app.state.live.cache.loads

    await chair.ok("person.mute", person_id=world.attendee_ids[1])
    refused = await bea.request("chat.send", text="can I still talk?")
    assert refused["code"] == "person.muted"
    await chair.ok("person.unmute", person_id=world.attendee_ids[1])
    await bea.ok("chat.send", text="back again")
    # Read again after each change, and only then.
    assert server.app.state.live.cache.loads == loads + 2


async def test_the_organisers_changes_reach_the_room_at_once(server: Server, world: World) -> None:
    """The organiser turns anonymous questions off, adds a word to the event's filter, then
    deletes the session, each while Ada is in the room: her next action sees each change (and the
    deleted session is a clear error, not a server error)."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    await ada.ok("question.ask", text="May I ask anonymously?", anonymous=True)
    async with organiser_api(server, world) as api:
        changed = await api.patch(
            f"/api/sessions/{world.session_id}", json={"anonymous_questions_allowed": False}
        )
        assert changed.status_code == 200, changed.text
        refused = await ada.request("question.ask", text="And now?", anonymous=True)
        assert refused["code"] == "question.anonymous_not_allowed"

        assert (await ada.ok("chat.send", text="spyware is everywhere"))["held"] is False
        changed = await api.patch(
            f"/api/events/{world.event_id}", json={"word_filter": ["spyware"]}
        )
        assert changed.status_code == 200, changed.text
        assert (await ada.ok("chat.send", text="spyware again"))["held"] is True

        deleted = await api.delete(f"/api/sessions/{world.session_id}")
        assert deleted.status_code == 204, deleted.text
    gone = await ada.request("chat.send", text="hello?")
    assert gone["type"] == "error" and gone["code"] == "session.not_found", gone


@pytest.mark.redis
@pytest.mark.slow
async def test_changes_made_through_one_process_reach_rooms_on_another(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """Two `dais serve` processes over Redis. Ada's socket is on the second; the chair and the
    organiser act through the first. Each change is seen by Ada's next action on the second
    process: a mute and an unmute by the chair, the organiser's session and event settings, and
    slow mode turned on and off by the chair."""
    with ExitStack() as stack:
        first, second = (
            Server(
                url=stack.enter_context(
                    dais_server(database_url, tmp_path, bus_url=REDIS_URL, live_rate_limits=CHATTY)
                ),
                settings=None,
                app=None,
            )  # type: ignore[arg-type]  # noqa: E501
            for _ in range(2)
        )
        ada = await Live.join(second, world.session_id, world.attendees[0])
        chair = await Live.join(first, world.session_id, world.chair)
        await ada.ok("chat.send", text="hello from the second process")
        await ada.event("message.posted")

        await chair.ok("person.mute", person_id=world.attendee_ids[0])
        await ada.event("person.muted")
        refused = await ada.request("chat.send", text="muted?")
        assert refused["code"] == "person.muted"
        await chair.ok("person.unmute", person_id=world.attendee_ids[0])
        await ada.event("person.unmuted")
        await ada.ok("chat.send", text="unmuted")

        await ada.ok("question.ask", text="Anonymous?", anonymous=True)
        async with organiser_api(first, world) as api:
            changed = await api.patch(
                f"/api/sessions/{world.session_id}", json={"anonymous_questions_allowed": False}
            )
            assert changed.status_code == 200, changed.text
            refused = await ada.request("question.ask", text="Anonymous again?", anonymous=True)
            assert refused["code"] == "question.anonymous_not_allowed"
            changed = await api.patch(
                f"/api/events/{world.event_id}", json={"word_filter": ["spyware"]}
            )
            assert changed.status_code == 200, changed.text
        assert (await ada.ok("chat.send", text="spyware"))["held"] is True

        # The chair turns slow mode on through the first process: Ada's next message on the
        # second is refused, and her first after the chair turns it off again is posted.
        await chair.ok("room.slow_mode", seconds=60)
        await skip_to(ada, "room.changed")
        refused = await ada.request("chat.send", text="too soon")
        assert refused["code"] == "rate_limited"
        await chair.ok("room.slow_mode", seconds=0)
        await skip_to(ada, "room.changed")
        await ada.ok("chat.send", text="no slow mode")
