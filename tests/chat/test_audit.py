"""The audit log under a flood of refused actions: refusals are rate-limited and folded, a socket
that keeps on is disconnected, and the organiser pages and filters what was done."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import websockets

from app.agenda.models import Session
from app.db import make_engine, make_sessionmaker
from tests.chat.conftest import ORGANISER_PASSWORD, Live, Server, World

FLOOD = 1_100


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@asynccontextmanager
async def signed_in(server: Server, world: World) -> AsyncIterator[httpx.AsyncClient]:
    """The organiser's browser, signed in."""
    async with httpx.AsyncClient(base_url=server.url) as organiser:
        response = await organiser.post(
            "/api/auth/sign-in",
            json={"email": world.organiser_email, "password": ORGANISER_PASSWORD},
        )
        assert response.status_code == 200
        yield organiser


async def audit(organiser: httpx.AsyncClient, world: World, **query: Any) -> httpx.Response:
    response = await organiser.get(f"/api/events/{world.event_id}/audit", params=query)
    assert response.status_code == 200, response.text
    return response


async def walk(organiser: httpx.AsyncClient, world: World, **query: Any) -> list[dict[str, Any]]:
    """Every page, following each page's `Link: <…>; rel="next"`."""
    response = await audit(organiser, world, **query)
    entries = response.json()
    pages = 1
    while "next" in response.links:
        response = await organiser.get(response.links["next"]["url"])
        assert response.status_code == 200, response.text
        entries += response.json()
        pages += 1
        assert pages < 100
    return entries


async def test_a_thousand_refused_unmutes_cannot_hide_the_chairs_mute(
    server: Server, world: World
) -> None:
    """SECURITY 25: 1,100 `person.unmute` frames from one attendee, as fast as the socket takes
    them: the first are `auth.forbidden` and audited, then `rate_limited` (not audited), then
    the socket is closed with 1008 `abuse.refused`. The refusals are one audit entry with their
    count, and the chair's real mute is on the first page (and first under `outcome=done`)."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    bea_id = world.attendee_ids[1]
    await chair.ok("person.mute", person_id=bea_id)
    assert (await bea.event("person.muted"))["person_id"] == bea_id

    started = time.monotonic()
    sent = 0
    try:
        for request_id in range(1, FLOOD + 1):
            frame = {"id": request_id, "type": "person.unmute", "person_id": bea_id}
            await ada.ws.send(json.dumps(frame))
            sent += 1
    except websockets.ConnectionClosed:
        pass
    replies: list[dict[str, Any]] = []
    try:
        while True:
            replies.append(json.loads(await asyncio.wait_for(ada.ws.recv(), 5)))
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1008, "abuse.refused")
    elapsed = time.monotonic() - started

    answers = [r for r in replies if r["type"] in ("ok", "error")]
    assert [a["id"] for a in answers] == list(range(1, len(answers) + 1))
    codes = [a.get("code") for a in answers]
    forbidden = codes.count("auth.forbidden")
    # Answered in order: refused while within the limit (20 at once, then 30 a minute), then
    # rate-limited until the 20 strikes (refilling as slowly) are spent; then the close.
    assert codes == ["auth.forbidden"] * forbidden + ["rate_limited"] * (len(codes) - forbidden)
    assert 20 <= forbidden <= 20 + elapsed / 2 + 1
    assert 20 <= len(codes) - forbidden <= 20 + elapsed / 2 + 1
    assert len(codes) < sent <= FLOOD

    # Nothing changed: Bea is still muted, and the room goes on at once for everyone else.
    assert (await bea.request("chat.send", text="let me speak"))["code"] == "person.muted"
    await chair.ok("room.slow_mode", seconds=5)

    async with signed_in(server, world) as organiser:
        first = (await audit(organiser, world)).json()
        done = (await audit(organiser, world, outcome="done")).json()
    assert [(e["action"], e["outcome"]) for e in first] == [
        ("room.slow_mode", "done"),
        ("person.unmute", "forbidden"),
        ("person.mute", "done"),
    ]
    folded = first[1]
    assert folded["actor_id"] == world.attendee_ids[0] and folded["target_id"] == bea_id
    assert folded["count"] == forbidden
    assert when(folded["last_at"]) > when(folded["created_at"])
    assert [(e["action"], e["actor_id"], e["target_id"]) for e in done] == [
        ("room.slow_mode", world.chair_id, None),
        ("person.mute", world.chair_id, bea_id),
    ]
    assert all(e["count"] == 1 for e in done)


async def test_refusals_fold_per_actor_action_and_target_and_done_actions_never_fold(
    server: Server, world: World
) -> None:
    """SECURITY 25: repeated refusals of one action by one person at one target are one entry
    with a count; another target, action or person is an entry of its own; every action done
    is an entry of its own."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    chair = await Live.join(server, world.session_id, world.chair)
    bea_id, cy_id = world.attendee_ids[1], world.attendee_ids[2]
    attempts = [
        (ada, "person.unmute", {"person_id": bea_id}, 3),
        (ada, "person.unmute", {"person_id": cy_id}, 2),
        (ada, "room.lock", {"locked": True}, 2),
        (bea, "room.lock", {"locked": True}, 1),
    ]
    for live, type_, fields, times in attempts:
        for _ in range(times):
            assert (await live.request(type_, **fields))["code"] == "auth.forbidden"
    for seconds in (10, 10):
        await chair.ok("room.slow_mode", seconds=seconds)

    async with signed_in(server, world) as organiser:
        entries = (await audit(organiser, world)).json()
    summary = sorted(
        (e["actor_id"], e["action"], e["target_id"] or "", e["outcome"], e["count"])
        for e in entries
    )
    ada_id = world.attendee_ids[0]
    assert summary == sorted(
        [
            (ada_id, "person.unmute", bea_id, "forbidden", 3),
            (ada_id, "person.unmute", cy_id, "forbidden", 2),
            (ada_id, "room.lock", "", "forbidden", 2),
            (bea_id, "room.lock", "", "forbidden", 1),
            (world.chair_id, "room.slow_mode", "", "done", 1),
            (world.chair_id, "room.slow_mode", "", "done", 1),
        ]
    )
    for entry in entries:
        first, last = when(entry["created_at"]), when(entry["last_at"])
        assert (last > first) == (entry["count"] > 1) and last >= first


async def test_pages_walk_every_entry_once_newest_first_while_actions_go_on(
    server: Server, world: World
) -> None:
    """SECURITY 25: with a small `limit`, following the cursor walks every entry exactly once,
    newest first; entries written while paging do not shift or repeat later pages."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    for seconds in range(1, 12):
        await chair.ok("room.slow_mode", seconds=seconds)
        assert (await ada.request("room.lock", locked=bool(seconds % 2)))["code"] == (
            "auth.forbidden"
        )
    async with signed_in(server, world) as organiser:
        everything = (await audit(organiser, world, limit=500)).json()
        assert "next" not in (await audit(organiser, world, limit=500)).links
        assert len(everything) == 12  # 11 slow-mode changes and one folded refusal
        order = [(when(e["created_at"]), e["id"]) for e in everything]
        assert order == sorted(order, reverse=True)

        assert [e["id"] for e in await walk(organiser, world, limit=5)] == [
            e["id"] for e in everything
        ]
        assert [e["id"] for e in await walk(organiser, world, limit=1)] == [
            e["id"] for e in everything
        ]

        # Page while the chair keeps acting: what was there is walked exactly once.
        page = await audit(organiser, world, limit=4)
        seen = page.json()
        while "next" in page.links:
            await chair.ok("room.slow_mode", seconds=30 + len(seen))
            page = await organiser.get(page.links["next"]["url"])
            seen += page.json()
        assert [e["id"] for e in seen] == [e["id"] for e in everything]
        # ... and the entries written meanwhile head the first page.
        newest = (await audit(organiser, world, limit=3)).json()
        assert [e["detail"] for e in newest] == ["seconds=38", "seconds=34", "seconds=11"]


async def test_filters_by_outcome_action_actor_and_session(
    server: Server, world: World, database_url: str
) -> None:
    """SECURITY 25: the audit log filters by outcome, action, actor and session, and every
    filter pages."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            panel = Session(
                event_id=world.event_id,
                title="Tech abuse and stalking",
                starts_at=datetime(2027, 3, 4, 13, 0, tzinfo=UTC),
                ends_at=datetime(2027, 3, 4, 14, 0, tzinfo=UTC),
            )
            db.add(panel)
            await db.commit()
            panel_id = panel.id
    finally:
        await engine.dispose()
    ada = await Live.join(server, world.session_id, world.attendees[0])
    chair = await Live.join(server, world.session_id, world.chair)
    organiser_live = await Live.join(server, panel_id, world.organiser)
    ada_in_panel = await Live.join(server, panel_id, world.attendees[0])
    await chair.ok("room.slow_mode", seconds=10)
    await chair.ok("person.mute", person_id=world.attendee_ids[1])
    await organiser_live.ok("room.lock", locked=True)
    await organiser_live.ok("room.slow_mode", seconds=20)
    assert (await ada.request("room.lock", locked=True))["code"] == "auth.forbidden"
    assert (await ada_in_panel.request("room.slow_mode", seconds=1))["code"] == "auth.forbidden"

    def seen(entries: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        names = {world.session_id: "talk", panel_id: "panel"}
        return {(names[e["session_id"]], e["action"], e["outcome"]) for e in entries}

    async with signed_in(server, world) as organiser:
        assert seen(await walk(organiser, world, outcome="done", limit=1)) == {
            ("talk", "room.slow_mode", "done"),
            ("talk", "person.mute", "done"),
            ("panel", "room.lock", "done"),
            ("panel", "room.slow_mode", "done"),
        }
        assert seen(await walk(organiser, world, outcome="forbidden", limit=1)) == {
            ("talk", "room.lock", "forbidden"),
            ("panel", "room.slow_mode", "forbidden"),
        }
        assert seen(await walk(organiser, world, action="room.slow_mode", limit=1)) == {
            ("talk", "room.slow_mode", "done"),
            ("panel", "room.slow_mode", "done"),
            ("panel", "room.slow_mode", "forbidden"),
        }
        assert seen(await walk(organiser, world, actor=world.attendee_ids[0], limit=1)) == {
            ("talk", "room.lock", "forbidden"),
            ("panel", "room.slow_mode", "forbidden"),
        }
        assert seen(await walk(organiser, world, session=panel_id, limit=1)) == {
            ("panel", "room.lock", "done"),
            ("panel", "room.slow_mode", "done"),
            ("panel", "room.slow_mode", "forbidden"),
        }
        both = await walk(
            organiser, world, session=panel_id, outcome="done", action="room.lock", limit=1
        )
        assert seen(both) == {("panel", "room.lock", "done")}
        assert (await audit(organiser, world, actor="nobody")).json() == []


async def test_bad_cursors_and_filters_are_refused_422_naming_the_field(
    server: Server, world: World
) -> None:
    """SECURITY 25 and 10: a cursor that no page gave, or a filter with a bad value, is a 422
    `request.invalid` naming the field, never a 5xx."""

    def cursor(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    bad = [
        ("cursor", "not a cursor"),
        ("cursor", "!!!"),
        ("cursor", cursor(b"\xff\xfe")),
        ("cursor", cursor(b"no separator")),
        ("cursor", cursor(b"yesterday|abc")),
        ("cursor", cursor(b"2027-03-04T11:15:00|abc")),  # no time zone
        ("cursor", cursor(b"2027-03-04T11:15:00+00:00|a|b")),
        ("cursor", cursor(b"2027-03-04T11:15:00+00:00|' or 1=1 --")),
        ("cursor", cursor(b"9999-12-31T23:00:00-05:00|abc")),  # past year 9999 in UTC
        ("cursor", "x" * 201),
        ("outcome", "maybe"),
        ("action", "person.explode"),
        ("action", "x" * 41),
        ("actor", "x" * 33),
        ("actor", "a\x00b"),
        ("session", ""),
        ("session", "x" * 33),
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "many"),
    ]
    async with signed_in(server, world) as organiser:
        for name, value in bad:
            response = await organiser.get(
                f"/api/events/{world.event_id}/audit", params={name: value}
            )
            assert response.status_code == 422, (name, value, response.text)
            error = response.json()["error"]
            assert error["code"] == "request.invalid"
            assert [f["field"] for f in error["fields"]] == [name], (value, error)
        good = cursor(b"2027-03-04T11:15:00+00:00|" + b"f" * 32)
        assert (await audit(organiser, world, cursor=good, limit=500)).json() == []
