"""The media port across processes: two "processes" (each its own Redis link, StageHosts and
MediaServer) on real Redis. Commands cross by their class and come back with typed results and the
host's StageSnapshot; a refusal on the host arrives as the same error; the relay runs nothing but
the port's own commands; and one link (one client, one listening connection) carries both the event
bus and stage hosting."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from redis.asyncio import Redis

from app.errors import Invalid, RateLimited
from chat.bus import CHANNEL, Envelope, open_bus
from chat.redis_link import RedisLink, open_link
from chat.stage_hosts import HOST_KEY, NODE_CHANNEL, StageHosts, open_stage_hosts
from streaming import (
    Answer,
    Answered,
    CloseConnection,
    Closed,
    Command,
    Describe,
    LayersToPublisher,
    LocalMedia,
    MediaServer,
    Mute,
    Offer,
    OfferToViewer,
    Publish,
    SetLive,
    StageSnapshot,
    Watch,
)
from streaming.errors import UNAVAILABLE, MediaError
from streaming.port import Push, decode_error, encode_error
from tests.conftest import REDIS_URL
from tests.streaming.media_clients import (
    LOOPBACK_ONLY,
    SyntheticCamera,
    Tone,
    Viewer,
    apply_answer,
    eventually,
    publisher_offer,
)

pytestmark = pytest.mark.redis


@dataclass
class Process:
    link: RedisLink
    hosts: StageHosts
    offers: list[Push]  # offers (and layers) delivered to this process's sockets


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[list[Process]]:
    async with AsyncExitStack() as stack:
        made = []
        for name in ("a", "b"):
            link = await stack.enter_async_context(open_link(REDIS_URL))
            assert isinstance(link, RedisLink)
            offers: list[Push] = []

            def deliver(offer: Push, offers: list[Push] = offers) -> bool:
                offers.append(offer)
                return True

            process: list[StageHosts] = []  # the media server's offers go to its stage hosts

            async def on_offer(offer: Push, process: list[StageHosts] = process) -> None:
                await process[0].send_offer(offer)

            media = MediaServer(ice_servers=[], recordings_dir=tmp_path / name, on_offer=on_offer)
            stack.push_async_callback(media.close)
            hosts = await stack.enter_async_context(
                open_stage_hosts(link, LocalMedia(media), deliver)
            )
            process.append(hosts)
            made.append(Process(link, hosts, offers))
        yield made


def new_session() -> str:
    return f"media-port-{uuid.uuid4().hex}"


async def test_a_viewer_on_one_process_watches_a_stage_hosted_on_another_in_typed_steps(
    processes: list[Process], redis: Redis
) -> None:
    """An attendee's socket is on A, the stage on B. Her watch, her answer, a speaker's publish and
    the offer B then makes her all cross as the port's types, and each step returns the stage as
    B has it."""
    a, b = processes
    session = new_session()
    await b.hosts.run(SetLive(session, person_id="spk", live=True))  # B hosts the stage
    assert await redis.get(HOST_KEY.format(session)) == b.hosts.node

    viewer = Viewer()
    speaker = RTCPeerConnection(LOOPBACK_ONLY)
    try:
        watched = await a.hosts.run(
            Watch(session, person_id="att", connection_id="att-socket", sees_green_room=False)
        )
        assert isinstance(watched.result, Offer) and watched.result.sdp.startswith("v=0")
        assert isinstance(watched.stage, StageSnapshot) and watched.stage.viewers == 1
        assert b.hosts.local.server.snapshot(session).viewers == 1
        assert a.hosts.local.server.snapshot(session).viewers == 0  # A holds nothing of it

        async def answer(sdp: str) -> None:
            answered = await a.hosts.run(
                Answer(session, connection_id="att-socket", peer_id=watched.result.peer_id, sdp=sdp)
            )
            assert answered.result is None

        await viewer.accept(
            {"peer_id": watched.result.peer_id, "sdp": watched.result.sdp, "tracks": []}, answer
        )

        # The speaker's socket is on A too; her camera and mic go to the stage on B.
        offer = await publisher_offer(speaker, [SyntheticCamera(), Tone()])
        published = await a.hosts.run(
            Publish(session, person_id="spk", connection_id="spk-socket", sdp=offer)
        )
        assert isinstance(published.result, Answered)
        await apply_answer(speaker, published.result.sdp)
        (presenter,) = published.stage.presenters
        assert presenter.person_id == "spk" and presenter.live and presenter.connected
        assert sorted(t.kind for t in presenter.tracks) == ["audio", "video"]

        # B offers the viewer the speaker's tracks: the offer reaches A's socket, typed.
        await eventually(lambda: bool(a.offers), message="B's offer on A")
        renegotiated = a.offers[0]
        assert isinstance(renegotiated, OfferToViewer) and not b.offers
        assert renegotiated.connection_id == "att-socket"
        assert renegotiated.peer_id == watched.result.peer_id
        assert {(t["person_id"], t["kind"]) for t in renegotiated.tracks} == {
            ("spk", "audio"),
            ("spk", "video"),
        }

        # A's sockets close: the host closes their peers; the stage changed (a publisher left).
        closed = await a.hosts.close_connection(session, "spk-socket")
        assert closed is not None and closed[0] is True
        assert closed[1].presenters[0].connected is False
        outcome = await a.hosts.run(CloseConnection(session, connection_id="att-socket"))
        assert outcome.result == Closed(stage_changed=False) and outcome.stage.viewers == 0
    finally:
        await viewer.close()
        await speaker.close()


async def test_a_refusal_on_the_host_arrives_as_the_same_error_with_its_code_and_field(
    processes: list[Process],
) -> None:
    a, b = processes
    session = new_session()
    await b.hosts.run(SetLive(session, person_id="ada", live=True))
    bad = Mute(session, person_id="ada", kind="smell", muted=True)
    with pytest.raises(MediaError) as on_host:
        await b.hosts.run(bad)
    with pytest.raises(MediaError) as relayed:
        await a.hosts.run(bad)
    assert type(relayed.value) is type(on_host.value) is MediaError
    assert relayed.value.code == on_host.value.code == "media.bad_kind"
    assert relayed.value.field == on_host.value.field == "kind"
    assert relayed.value.message == on_host.value.message
    # Nothing changed on the host.
    assert (await a.hosts.run(Describe(session))).stage.presenters[0].muted_kinds() == {
        "audio": False,
        "video": False,
    }


def test_any_domain_error_crosses_as_data_with_its_class_code_field_and_details() -> None:
    """What the relay sends for a refusal is enough to raise the same error again elsewhere."""
    for error in (
        Invalid("agenda.bad_time", "Ends before it starts.", field="ends_at"),
        RateLimited("live.rate_limited", "Slow down.", retry_after=3),
        MediaError(UNAVAILABLE),
    ):
        again = decode_error(json.loads(json.dumps(encode_error(error))))
        assert type(again) is type(error)
        assert (again.code, again.message, again.field) == (error.code, error.message, error.field)
        assert again.to_dict() == error.to_dict()
    assert again.status == 422
    limited = decode_error(encode_error(RateLimited("live.rate_limited", "x", retry_after=3)))
    assert isinstance(limited, RateLimited) and limited.retry_after == 3


@dataclass(frozen=True)
class Shutdown(Command[None]):
    """Not one of the port's commands, however it is spelled."""


async def test_the_relay_runs_only_the_ports_own_commands(
    processes: list[Process], redis: Redis
) -> None:
    """A caller cannot send a command type the port does not know, and a host refuses one that
    arrives anyway (by name, or naming one of MediaServer's methods) with `media.failed`."""
    a, b = processes
    session = new_session()
    await b.hosts.run(SetLive(session, person_id="ada", live=True))
    with pytest.raises(TypeError):
        await a.hosts.run(Shutdown(session))

    reply_to = f"test-{uuid.uuid4().hex}"
    pubsub = redis.pubsub()
    await pubsub.subscribe(NODE_CHANNEL.format(reply_to))
    try:
        for name, fields in (
            ("Shutdown", {"session_id": session}),
            ("close", {}),  # MediaServer.close(), were commands looked up by method name
            ("end_session", {"session_id": session}),
            ("SetLive", {"session_id": session, "person_id": "ada", "live": False, "x": 1}),
        ):
            call = {
                "kind": "call",
                "id": name,
                "reply_to": reply_to,
                "command": {"type": name, "fields": fields},
            }
            assert await redis.publish(NODE_CHANNEL.format(b.hosts.node), json.dumps(call)) == 1
            reply = await _next_message(pubsub)
            assert reply["id"] == name and "result" not in reply
            assert reply["error"]["code"] == "media.failed"
            assert reply["error"]["class"] == "streaming.errors.MediaError"
    finally:
        await pubsub.aclose()
    # The stage on B is as it was: Ada is still live.
    assert b.hosts.local.server.snapshot(session).live == ("ada",)


async def _next_message(pubsub: Any) -> dict[str, Any]:
    async def next_one() -> dict[str, Any]:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                return json.loads(message["data"])  # type: ignore[no-any-return]

    return await asyncio.wait_for(next_one(), 5.0)


async def test_one_link_carries_the_event_bus_and_stage_hosting(
    tmp_path: Path, redis: Redis
) -> None:
    """A process opens two Redis connections in all (one listening, one for commands) for the bus
    and stage hosting together, where each used to open its own pair."""
    session = new_session()
    async with open_link(REDIS_URL) as link:
        assert isinstance(link, RedisLink)

        async def connections() -> int:
            return sum(1 for c in await redis.client_list() if c["name"] == link.name)

        media = MediaServer(ice_servers=[], recordings_dir=tmp_path, send=_nowhere)
        try:
            delivered: list[Envelope] = []
            async with (
                open_bus(link, delivered.extend) as bus,
                open_stage_hosts(link, LocalMedia(media), lambda offer: False) as hosts,
            ):
                envelope = Envelope("frame", session, "all", 7, '{"type": "x"}')
                await bus.publish(envelope)
                await eventually(lambda: delivered == [envelope], message="the envelope back")
                await hosts.run(SetLive(session, person_id="ada", live=True))
                assert await redis.get(HOST_KEY.format(session)) == hosts.node
                channels = await redis.pubsub_channels(f"{NODE_CHANNEL.format(hosts.node)}*")
                assert channels == [NODE_CHANNEL.format(hosts.node)]
                assert (await redis.pubsub_numsub(CHANNEL))[0][1] >= 1
                assert await connections() == 2
            # Both gave their channels up; the link stays open until the app closes it.
            assert await redis.pubsub_numsub(NODE_CHANNEL.format(hosts.node)) == [
                (NODE_CHANNEL.format(hosts.node), 0)
            ]
        finally:
            await media.close()
    assert await connections() == 0


async def _nowhere(connection_id: str, message: dict[str, object]) -> None:
    """No viewers in this story: nothing is offered."""


async def test_a_speakers_layers_reach_its_socket_on_the_process_holding_it(
    processes: list[Process],
) -> None:
    """Dynacast across processes: the stage's host (B) tells a speaker whose socket is on A which
    layers to send; A's socket gets them as the port's type, as an offer would."""
    a, b = processes
    session = new_session()
    await b.hosts.run(SetLive(session, person_id="spk", live=True))
    await a.hosts.run(  # a call from the socket on A: B learns where that socket is
        Watch(session, person_id="spk", connection_id="spk-socket", sees_green_room=True)
    )
    layers = LayersToPublisher(
        connection_id="spk-socket", peer_id="peer-1", label="camera", active=("q", "f")
    )
    await b.hosts.send_offer(layers)
    await eventually(lambda: a.offers == [layers], 5, "the layers on A")
    assert b.offers == []
