"""Access withdrawn over HTTP reaches open sockets: revocation, sign-out and role changes."""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack, suppress
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import select, text

from app.db import make_engine, make_sessionmaker
from chat.models import AuditEntry
from tests.chat.conftest import Live, Server, World, hold_for_a_while
from tests.conftest import REDIS_URL
from tests.serving import dais_server


async def closed_with(live: Live, within: float = 2.0) -> tuple[int, str]:
    """The code and reason the server closes `live` with, within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                await live.ws.recv()
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None, "dropped without a close frame"
        return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("unreachable")


def organiser_api(server: Server, world: World) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {world.organiser}"}
    )


async def test_revoked_presenter_is_closed_everywhere_within_2_s(
    server: Server, world: World
) -> None:
    """SECURITY 21: the organiser revokes the chair; both of the chair's tabs close with 1008
    `auth.revoked` within 2 s, nothing sent afterwards acts, and the token cannot rejoin."""
    chair_tabs = [await Live.join(server, world.session_id, world.chair) for _ in range(2)]
    ada = await Live.join(server, world.session_id, world.attendees[0])
    async with organiser_api(server, world) as api:
        revoked = await api.post(f"/api/events/{world.event_id}/people/{world.chair_id}/revoke")
        assert revoked.status_code == 200, revoked.text
    for tab in chair_tabs:
        assert await closed_with(tab) == (1008, "auth.revoked")
    # The attendee stays, and no moderation by the revoked chair reached them.
    await ada.nothing(0.3)
    await ada.ok("chat.send", text="still here")
    again = await Live.connect(server, world.session_id)
    reply = await again.request("room.join", token=world.chair)
    assert reply["code"] == "auth.revoked"


async def test_signing_out_closes_that_sign_ins_sockets_only(server: Server, world: World) -> None:
    """SECURITY 21: an attendee who signs out is closed with 1008 `auth.revoked`; their chat
    after that is not posted; other people's sockets stay open."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    bea = await Live.join(server, world.session_id, world.attendees[1])
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {world.attendees[0]}"}
    ) as browser:
        signed_out = await browser.post("/api/auth/sign-out")
        assert signed_out.status_code == 204
    # Sent as soon as the sign-out is answered: it must not be posted.
    with suppress(websockets.ConnectionClosed):
        await ada.ws.send('{"id": 1, "type": "chat.send", "text": "after sign-out"}')
    assert await closed_with(ada) == (1008, "auth.revoked")
    await bea.nothing(0.5)
    late = await Live.join(server, world.session_id, world.attendees[2])
    assert late.joined is not None
    assert [m["text"] for m in late.joined["messages"]] == []


async def test_a_replaced_chair_rejoins_as_moderator_and_cannot_end_the_session(
    server: Server, world: World
) -> None:
    """SECURITY 21: the organiser makes someone else chair; the old chair's open socket closes
    with 1008 `auth.role_changed` within 2 s; joining again they are a moderator, and
    `session.end` is refused."""
    chair = await Live.join(server, world.session_id, world.chair)
    speaker = await Live.join(server, world.session_id, world.speaker)
    ada = await Live.join(server, world.session_id, world.attendees[0])
    async with organiser_api(server, world) as api:
        invited = await api.post(
            f"/api/sessions/{world.session_id}/invites",
            json={"role": "chair", "display_name": "Rory New-Chair"},
        )
        assert invited.status_code == 201, invited.text
    assert await closed_with(chair) == (1008, "auth.role_changed")
    # Nobody else's role changed: their sockets stay.
    await speaker.nothing(0.3)
    await ada.nothing(0.1)
    again = await Live.join(server, world.session_id, world.chair)
    assert again.joined is not None and again.joined["you"]["role"] == "moderator"
    refused = await again.request("session.end")
    assert refused["code"] == "auth.forbidden"


async def test_an_attendee_invited_as_speaker_rejoins_as_speaker(
    server: Server, world: World
) -> None:
    """SECURITY 21: a role gained takes effect too: the attendee's socket closes with
    `auth.role_changed`, and joining again they are a speaker."""
    ada = await Live.join(server, world.session_id, world.attendees[0])
    async with organiser_api(server, world) as api:
        invited = await api.post(
            f"/api/sessions/{world.session_id}/invites",
            json={"role": "speaker", "participant_id": world.attendee_ids[0]},
        )
        assert invited.status_code == 201, invited.text
    assert await closed_with(ada) == (1008, "auth.role_changed")
    again = await Live.join(server, world.session_id, world.attendees[0])
    assert again.joined is not None and again.joined["you"]["role"] == "speaker"


@pytest.mark.redis
@pytest.mark.slow
async def test_revocation_reaches_sockets_on_another_process(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """SECURITY 21: two `dais serve` processes on Redis; the organiser revokes through the
    first, the person's socket on the second closes with `auth.revoked` within 2 s; a sign-out
    through the first closes that sign-in's socket on the second."""
    with ExitStack() as stack:
        urls = [
            stack.enter_context(dais_server(database_url, tmp_path, bus_url=REDIS_URL))
            for _ in range(2)
        ]
        first, second = (Server(url=url, settings=None, app=None) for url in urls)  # type: ignore[arg-type]
        speaker = await Live.join(second, world.session_id, world.speaker)
        ada = await Live.join(second, world.session_id, world.attendees[0])
        async with organiser_api(first, world) as api:
            revoked = await api.post(
                f"/api/events/{world.event_id}/people/{world.speaker_id}/revoke"
            )
            assert revoked.status_code == 200, revoked.text
        assert await closed_with(speaker) == (1008, "auth.revoked")
        async with httpx.AsyncClient(
            base_url=first.url, headers={"Authorization": f"Bearer {world.attendees[0]}"}
        ) as browser:
            assert (await browser.post("/api/auth/sign-out")).status_code == 204
        assert await closed_with(ada) == (1008, "auth.revoked")


async def test_a_chairs_action_under_way_when_their_access_is_withdrawn_is_finished_whole(
    server: Server, world: World, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The chair ends the session while another program holds the audit log's table for a
    second (another process's transaction; on SQLite, the file's write lock), and the organiser
    revokes the chair meanwhile. The chair's socket closes with `auth.revoked` once the end is
    done: the stage is ended and the end is in the audit log, not cut off halfway through its
    transaction (the stage ended, nothing recorded), and the server logs no error."""
    chair = await Live.join(server, world.session_id, world.chair)
    holder = await hold_for_a_while(database_url, text("LOCK TABLE live_audit IN EXCLUSIVE MODE"))
    caplog.set_level(logging.WARNING)
    await chair.send("session.end")
    await asyncio.sleep(0.3)  # the end waits for the table
    await server.app.state.live.withdraw(person_id=world.chair_id)
    assert await closed_with(chair, within=5.0) == (1008, "auth.revoked")
    await holder
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as db:
            done = await db.scalars(
                select(AuditEntry.outcome).where(
                    AuditEntry.session_id == world.session_id, AuditEntry.action == "session.end"
                )
            )
            assert list(done) == ["done"]
    finally:
        await engine.dispose()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
