"""Who may open a live socket, who may do what on it, and what removal and locking do."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from app.settings import Settings
from tests.chat.conftest import (
    ANY,
    ORGANISER_PASSWORD,
    Live,
    Server,
    ServerFactory,
    World,
    make_world,
)


@pytest.mark.parametrize("origin", [None, "null", "https://evil.example"])
async def test_upgrade_from_a_foreign_origin_is_refused_before_any_frame(
    server: Server, world: World, origin: str | None
) -> None:
    """SECURITY 1: a missing, `null` or unlisted Origin is refused at the upgrade (HTTP 403)."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await Live.connect(server, world.session_id, origin=origin)
    assert refused.value.response.status_code == 403


async def test_listed_origin_is_accepted(start_server: ServerFactory, world: World) -> None:
    server = await start_server(allowed_origins=["https://dais.example"])
    live = await Live.connect(server, world.session_id, origin="https://dais.example")
    assert (await live.request("room.join", token=world.attendees[0]))["type"] == "ok"


async def test_socket_that_does_not_authenticate_in_time_is_closed_1008(
    start_server: ServerFactory, world: World
) -> None:
    """SECURITY 2: no join within the limit (5 s by default; 0.5 s here) closes with 1008, and
    a token in the URL counts for nothing."""
    assert Settings().live_auth_seconds == 5.0
    server = await start_server(live_auth_seconds=0.5)
    live = await Live.connect(server, world.session_id)
    started = time.monotonic()
    assert await live.closed() == 1008
    assert time.monotonic() - started < 2.0

    url = server.live_url(world.session_id) + f"?token={world.attendees[0]}"
    async with websockets.connect(url, origin=server.origin) as ws:  # type: ignore[arg-type]
        await ws.send('{"id": 1, "type": "room.join"}')
        refused = await asyncio.wait_for(ws.recv(), 3)
        assert '"code":"auth.required"' in refused
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_bad_token_is_refused_and_closed(server: Server, world: World) -> None:
    """SECURITY 2: a socket whose token does not resolve gets `auth.invalid_token` and 1008."""
    live = await Live.connect(server, world.session_id)
    refused = await live.request("room.join", token="not-a-token")
    assert refused == {
        "type": "error",
        "id": 1,
        "code": "auth.invalid_token",
        "message": ANY,
        "field": None,
    }
    assert await live.closed() == 1008


async def test_attendee_registers_and_joins_with_the_session_cookie(
    server: Server, world: World
) -> None:
    """SECURITY 2 and 12: a display name is enough; the HttpOnly cookie authenticates the socket."""
    async with httpx.AsyncClient(base_url=server.url) as browser:
        response = await browser.post(
            f"/api/events/{world.event_id}/register", json={"display_name": "Quiet Reader"}
        )
        assert response.status_code == 201
        cookie = browser.cookies["dais_session"]
    live = await Live.connect(server, world.session_id, cookie=cookie)
    joined = await live.ok("room.join")
    assert joined["you"] == {
        "person_id": ANY,
        "name": "Quiet Reader",
        "role": "attendee",
        "muted": False,
    }


async def test_attendee_sending_chair_actions_is_forbidden_and_audited(
    server: Server, world: World
) -> None:
    """SECURITY 3: chair actions with an attendee token get `auth.forbidden`, change nothing, and
    appear in the audit log the organiser reads over HTTP."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    question_id = (await bea.ok("question.ask", text="Pending question"))["question"]["id"]
    await chair.event("question.submitted")
    attempts = [
        ("question.approve", {"question_id": question_id}),
        ("room.lock", {"locked": True}),
        ("room.slow_mode", {"seconds": 60}),
        ("person.remove", {"person_id": world.attendee_ids[1]}),
        ("announcement.post", {"text": "Fake announcement"}),
        ("poll.create", {"question": "?", "options": ["a", "b"]}),
    ]
    for type_, fields in attempts:
        reply = await ada.request(type_, **fields)
        assert reply == {
            "type": "error",
            "id": ANY,
            "code": "auth.forbidden",
            "message": ANY,
            "field": None,
        }
    await bea.nothing()
    await chair.nothing()
    late = await Live.join(server, world.session_id, world.attendees[2])
    assert late.joined is not None
    assert late.joined["room"] == {
        "locked": False,
        "slow_mode_seconds": 0,
        "pinned_question_id": None,
    }
    assert late.joined["questions"] == [] and late.joined["messages"] == []

    await chair.ok("room.slow_mode", seconds=10)
    async with httpx.AsyncClient(base_url=server.url) as organiser:
        signed_in = await organiser.post(
            "/api/auth/sign-in",
            json={"email": world.organiser_email, "password": ORGANISER_PASSWORD},
        )
        assert signed_in.status_code == 200
        audit = (await organiser.get(f"/api/events/{world.event_id}/audit")).json()
    assert audit[0] | {"id": ANY, "created_at": ANY, "last_at": ANY} == {
        "id": ANY,
        "session_id": world.session_id,
        "actor_id": world.chair_id,
        "actor_role": "chair",
        "action": "room.slow_mode",
        "target_id": None,
        "detail": "seconds=10",
        "outcome": "done",
        "count": 1,
        "created_at": ANY,
        "last_at": ANY,
    }
    refused = [(e["action"], e["actor_id"], e["outcome"]) for e in reversed(audit[1:])]
    assert refused == [(t, world.attendee_ids[0], "forbidden") for t, _ in attempts]
    async with httpx.AsyncClient(base_url=server.url) as stranger:
        assert (await stranger.get(f"/api/events/{world.event_id}/audit")).status_code == 401


async def test_removed_person_is_closed_within_2s_and_cannot_rejoin(
    server: Server, world: World
) -> None:
    """SECURITY 5: "remove" closes the person's socket within 2 s; the same token cannot rejoin."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    ada_second_tab = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    started = time.monotonic()
    await chair.ok("person.remove", person_id=world.attendee_ids[0])
    assert await ada.closed(2.0) == 1008
    assert await ada_second_tab.closed(2.0) == 1008
    assert time.monotonic() - started < 2.0
    assert await chair.event("person.removed") == {
        "type": "person.removed",
        "seq": ANY,
        "person_id": world.attendee_ids[0],
    }
    again = await Live.connect(server, world.session_id)
    assert (await again.request("room.join", token=world.attendees[0]))["code"] == "room.removed"
    assert await again.closed() == 1008
    protected = await chair.request("person.remove", person_id=world.chair_id)
    assert protected["code"] == "person.protected"


async def test_locked_room_refuses_new_joins_but_not_the_chair(
    server: Server, world: World
) -> None:
    """SECURITY 5: "lock" refuses new joins even with valid tokens."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    await chair.ok("room.lock", locked=True)
    changed = {
        "type": "room.changed",
        "seq": ANY,
        "room": {"locked": True, "slow_mode_seconds": 0, "pinned_question_id": None},
    }
    assert await ada.event("room.changed") == changed
    bea = await Live.connect(server, world.session_id)
    assert (await bea.request("room.join", token=world.attendees[1]))["code"] == "room.locked"
    assert await bea.closed() == 1008
    organiser = await Live.join(server, world.session_id, world.organiser)
    assert organiser.joined is not None and organiser.joined["you"]["role"] == "organiser"
    await chair.ok("room.lock", locked=False)
    await Live.join(server, world.session_id, world.attendees[1])


async def test_people_of_another_event_cannot_join(
    server: Server, world: World, database_url: str
) -> None:
    other = await make_world(database_url, attendees=1, tag="other")
    live = await Live.connect(server, world.session_id)
    assert (await live.request("room.join", token=other.attendees[0]))["code"] == "auth.forbidden"
    assert await live.closed() == 1008
    stray = await Live.connect(server, "no-such-session")
    assert (await stray.request("room.join", token=world.attendees[0]))[
        "code"
    ] == "session.not_found"
    assert await stray.closed() == 1008
