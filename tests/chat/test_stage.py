"""Stories of the stage over the live socket: a speaker publishes from the green room, the chair
puts them live, attendees receive them from the server; real aiortc peers, real uvicorn."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from tests.chat.conftest import Live, Server, ServerFactory, World
from tests.streaming.media_clients import (
    LOOPBACK_ONLY,
    SyntheticCamera,
    Tone,
    Viewer,
    apply_answer,
    eventually,
    publisher_offer,
    wait_connected,
)


async def until(
    live: Live, type_: str, timeout: float = 5.0, where: Any = lambda frame: True
) -> dict[str, Any]:
    """The next frame of `type_` (and `where`); frames passed over stay to be read later, except
    watching counts and earlier states of the same kind."""
    deadline = time.monotonic() + timeout
    passed: list[dict[str, Any]] = []
    try:
        while True:
            frame = await live.recv(max(0.05, deadline - time.monotonic()))
            if frame["type"] == type_ and where(frame):
                return frame
            if frame["type"] not in ("watching.changed", type_):
                passed.append(frame)
    finally:
        live.inbox.extendleft(reversed(passed))


class Tab:
    """A browser tab: its live socket, and its viewing peer connection once it watches."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.viewer = Viewer()
        self.publisher: RTCPeerConnection | None = None

    async def watch(self) -> dict[str, Any]:
        offer = await self.live.ok("media.watch")
        await self.viewer.accept(offer, self._answer(offer["peer_id"]))
        return offer

    async def take_offer(self) -> dict[str, Any]:
        """Answer the server's next renegotiation."""
        offer = await until(self.live, "media.offered")
        await self.viewer.accept(offer, self._answer(offer["peer_id"]))
        return offer

    def _answer(self, peer_id: str) -> Any:
        async def answer(sdp: str) -> None:
            await self.live.ok("media.answer", peer_id=peer_id, sdp=sdp)

        return answer

    async def publish(self) -> dict[str, Any]:
        self.publisher = RTCPeerConnection(LOOPBACK_ONLY)
        sdp = await publisher_offer(self.publisher, [SyntheticCamera(), Tone()])
        result = await self.live.ok("media.publish", sdp=sdp)
        await apply_answer(self.publisher, result["sdp"])
        return result

    async def close(self) -> None:
        await self.viewer.close()
        if self.publisher is not None:
            await self.publisher.close()
        await self.live.close()


async def test_a_speaker_goes_live_from_the_green_room_and_attendees_receive_them(
    server: Server, world: World
) -> None:
    speaker = Tab(await Live.join(server, world.session_id, world.speaker))
    chair = Tab(await Live.join(server, world.session_id, world.chair))
    attendee = Tab(await Live.join(server, world.session_id, world.attendees[0]))
    try:
        # Joining tells everyone the stage as it is: nobody live yet; no green room for attendees.
        assert attendee.live.joined is not None and chair.live.joined is not None
        assert attendee.live.joined["stage"] == {"live": [], "presenters": [], "ended": False}
        assert attendee.live.joined["green_room"] is None
        assert chair.live.joined["green_room"] == {"live": [], "presenters": [], "ended": False}

        published = await speaker.publish()
        assert published["may_publish"] is True
        assert speaker.publisher is not None
        await wait_connected(speaker.publisher)

        # The chair sees the speaker in the green room; the attendee sees nobody live.
        green = await until(
            chair.live, "green_room.changed", where=lambda f: f["stage"]["presenters"]
        )
        (presenter,) = green["stage"]["presenters"]
        assert presenter["person_id"] == world.speaker_id and presenter["live"] is False
        await chair.watch()
        await eventually(lambda: chair.viewer.counter("video", world.speaker_id) is not None)
        await eventually(lambda: chair.viewer.counter("video", world.speaker_id).frames > 10)

        offer = await attendee.watch()
        assert offer["tracks"] == []

        # The chair puts the speaker live: the attendee's connection is renegotiated.
        await chair.live.ok("stage.go_live", person_id=world.speaker_id)
        live_stage = await until(attendee.live, "stage.changed", where=lambda f: f["stage"]["live"])
        assert live_stage["stage"]["live"] == [world.speaker_id]
        offered = await attendee.take_offer()
        assert {(t["person_id"], t["kind"]) for t in offered["tracks"]} == {
            (world.speaker_id, "audio"),
            (world.speaker_id, "video"),
        }
        await eventually(lambda: attendee.viewer.counter("video").frames > 10, timeout=5)

        # Muting video for attendees takes it out of their connection only.
        await chair.live.ok("stage.mute", person_id=world.speaker_id, kind="video", muted=True)
        muted = await attendee.take_offer()
        assert {t["kind"] for t in muted["tracks"]} == {"audio"}
        stage = await until(
            attendee.live, "stage.changed", where=lambda f: f["stage"]["presenters"]
        )
        assert stage["stage"]["presenters"][0]["muted"] == {"audio": False, "video": True}

        # Only the chair controls the stage; the attempt is refused and audited.
        refused = await attendee.live.request("stage.go_live", person_id=world.attendee_ids[0])
        assert refused["type"] == "error" and refused["code"] == "auth.forbidden"
    finally:
        for tab in (speaker, chair, attendee):
            await tab.close()


async def test_an_attendee_who_offers_media_is_refused_without_a_peer_connection(
    server: Server, world: World
) -> None:
    """SECURITY 4 and 22: no publish rights, no peer connection: `media.forbidden`."""
    attendee = Tab(await Live.join(server, world.session_id, world.attendees[0]))
    offerer = RTCPeerConnection(LOOPBACK_ONLY)
    try:
        sdp = await publisher_offer(offerer, [SyntheticCamera(), Tone()])
        refused = await attendee.live.request("media.publish", sdp=sdp)
        assert refused["type"] == "error" and refused["code"] == "media.forbidden"
        assert server.app.state.media.stage(world.session_id)["publishers"] == []
    finally:
        await offerer.close()
        await attendee.close()


async def test_signalling_limits_and_closing_the_socket_closes_the_peers(
    server: Server, world: World
) -> None:
    """SECURITY.md lines 6 and 9: an SDP over 64 KiB is refused; a person's peer connections
    close within 5 s of their socket closing."""
    speaker = Tab(await Live.join(server, world.session_id, world.speaker))
    chair = Tab(await Live.join(server, world.session_id, world.chair))
    huge = "v=0\r\n" + "a=x-padding:" + "x" * (65 * 1024) + "\r\n"
    refused = await speaker.live.request("media.publish", sdp=huge)
    assert refused["type"] == "error" and refused["code"] == "media.sdp_too_large"

    await speaker.publish()
    media = server.app.state.media
    await eventually(lambda: media.stage(world.session_id)["publishers"][0]["connected"])
    await until(chair.live, "green_room.changed", where=lambda f: f["stage"]["presenters"])
    await speaker.live.close()
    started = time.monotonic()
    green = await until(
        chair.live,
        "green_room.changed",
        timeout=5,
        where=lambda f: not f["stage"]["presenters"][0]["connected"],
    )
    # The server closed the speaker's peer connection with the socket (its stage place is kept
    # for the reconnect grace period, shown as not connected).
    assert green["stage"]["presenters"][0]["connected"] is False
    assert time.monotonic() - started < 5
    await chair.close()
    await speaker.close()


async def test_ending_the_session_stores_its_recording_for_the_organiser(
    server: Server, world: World
) -> None:
    speaker = Tab(await Live.join(server, world.session_id, world.speaker))
    chair = Tab(await Live.join(server, world.session_id, world.chair))
    try:
        await speaker.publish()
        await chair.live.ok("stage.go_live", person_id=world.speaker_id)
        await asyncio.sleep(2.5)
        await chair.live.ok("session.end")
        ended = await until(chair.live, "stage.changed", where=lambda f: f["stage"]["ended"])
        assert ended["stage"]["ended"] is True

        import httpx

        async with httpx.AsyncClient(base_url=server.url) as organiser:
            organiser.headers["authorization"] = f"Bearer {world.organiser}"
            recordings: list[dict[str, Any]] = []

            async def listed() -> bool:
                response = await organiser.get(f"/api/events/{world.event_id}/recordings")
                recordings[:] = response.json()
                return bool(recordings)

            deadline = time.monotonic() + 5
            while not await listed():
                assert time.monotonic() < deadline, "no recording stored"
                await asyncio.sleep(0.1)
            (recording,) = recordings
            assert recording["session_id"] == world.session_id
            assert 1.0 < recording["duration_seconds"] < 4.0
            file = await organiser.get(recording["url"])
            assert file.status_code == 200 and len(file.content) == recording["size_bytes"]
    finally:
        await speaker.close()
        await chair.close()


async def test_removing_a_person_closes_their_socket_and_peer_connection_within_2_s(
    server: Server, world: World
) -> None:
    """SECURITY.md line 5: "remove" closes the person's socket and peer connection within 2 s."""
    speaker = Tab(await Live.join(server, world.session_id, world.speaker))
    chair = Tab(await Live.join(server, world.session_id, world.chair))
    media = server.app.state.media
    try:
        await speaker.publish()
        await eventually(lambda: media.stage(world.session_id)["publishers"][0]["connected"])
        started = time.monotonic()
        await chair.live.ok("person.remove", person_id=world.speaker_id)
        assert await speaker.live.closed(timeout=2) == 1008
        await eventually(
            lambda: not media.stage(world.session_id)["publishers"][0]["connected"],
            timeout=max(0.1, 2 - (time.monotonic() - started)),
        )
    finally:
        await speaker.close()
        await chair.close()


@pytest.mark.redis
async def test_chat_does_not_wait_behind_signalling_to_a_stage_host_that_does_not_answer(
    start_server: ServerFactory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signals take no room lock: while an attendee's `media.watch` waits on the session's stage
    host (another process that listens but never answers), the room's chat goes on at once; the
    watch ends with `media.unavailable` when the call times out."""
    from redis.asyncio import Redis

    from chat import stage_hosts
    from chat.stage_hosts import HOST_KEY, NODE_CHANNEL
    from tests.conftest import REDIS_URL

    monkeypatch.setattr(stage_hosts, "CALL_TIMEOUT", 3.0)
    server = await start_server(bus_url=REDIS_URL)
    watcher = await Live.join(server, world.session_id, world.attendees[0])
    chatter = await Live.join(server, world.session_id, world.attendees[1])
    redis = Redis.from_url(REDIS_URL)
    pubsub = redis.pubsub()
    await pubsub.subscribe(NODE_CHANNEL.format("a-stuck-process"))
    try:
        await redis.set(HOST_KEY.format(world.session_id), "a-stuck-process", px=30_000)
        watch_id = await watcher.send("media.watch")
        await asyncio.sleep(0.2)  # the watch is waiting on the stuck host now
        started = time.perf_counter()
        await chatter.ok("chat.send", text="Is the stage up yet?")
        assert time.perf_counter() - started < 1.0
        while True:
            frame = await watcher.recv(timeout=5)
            if frame.get("id") == watch_id:
                break
        assert frame["type"] == "error" and frame["code"] == "media.unavailable"
    finally:
        await redis.delete(HOST_KEY.format(world.session_id))
        await pubsub.aclose()
        await redis.aclose()
