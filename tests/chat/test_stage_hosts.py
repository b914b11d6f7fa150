"""Stage hosting across processes, at the level of `StageHosts`: two "processes" (each its own
StageHosts and MediaServer) on real Redis. Who hosts a session, relayed calls and their errors,
and what happens when the host is gone or does not answer."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from chat import stage_hosts
from chat.redis_link import open_link
from chat.stage_hosts import HOST_KEY, NODE_CHANNEL, StageHosts, open_stage_hosts
from streaming import Describe, LocalMedia, MediaServer, Mute, SetLive
from streaming.errors import MediaError
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis


async def _no_send(connection_id: str, message: dict[str, Any]) -> None:
    """No viewers in these stories: nothing is offered."""


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[list[StageHosts]]:
    async with AsyncExitStack() as stack:
        made = []
        for name in ("a", "b"):
            link = await stack.enter_async_context(open_link(REDIS_URL))
            media = MediaServer(ice_servers=[], recordings_dir=tmp_path / name, send=_no_send)
            stack.push_async_callback(media.close)
            made.append(
                await stack.enter_async_context(
                    open_stage_hosts(link, LocalMedia(media), lambda offer: False)
                )
            )
        yield made


def new_session() -> str:
    return f"stage-hosts-{uuid.uuid4().hex}"


async def test_the_first_process_asked_hosts_the_stage_and_the_other_relays_to_it(
    processes: list[StageHosts], redis: Redis
) -> None:
    a, b = processes
    session = new_session()
    # Asking for the stage claims nothing: nobody hosts it, the stage is empty.
    stage = (await a.run(Describe(session))).stage
    assert stage.live == () and await redis.get(HOST_KEY.format(session)) is None

    # B is asked to change it: B hosts it from now on; A's calls run on B.
    await b.run(SetLive(session, person_id="ada", live=True))
    assert await redis.get(HOST_KEY.format(session)) == b.node
    stage = (await a.run(Describe(session))).stage
    assert stage.live == ("ada",)
    stage = (await a.run(Mute(session, person_id="ada", kind="video", muted=True))).stage
    assert stage.presenters[0].muted_kinds() == {"audio": False, "video": True}
    assert b.local.server.stage(session)["publishers"][0]["muted"]["video"] is True
    assert a.local.server.stage(session)["live"] == []  # A holds nothing of it

    # The host's refusals come back as the same domain errors, with their codes.
    with pytest.raises(MediaError) as refused:
        await a.run(Mute(session, person_id="ada", kind="smell", muted=True))
    assert refused.value.code == "media.bad_kind"


async def test_a_host_that_is_gone_is_replaced_and_one_that_does_not_answer_is_reported(
    processes: list[StageHosts], redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = processes
    # A lease left by a process that died: nobody listens on its channel.
    gone = new_session()
    await redis.set(HOST_KEY.format(gone), "a-dead-process", px=30_000)
    await redis.set(
        stage_hosts.STATE_KEY.format(gone),
        json.dumps({"ada": {"live": True, "muted": {"audio": True, "video": False}}}),
    )
    stage = (await a.run(Describe(gone))).stage
    assert stage.live == ()  # asking claims nothing, but the dead lease is gone
    assert await redis.get(HOST_KEY.format(gone)) is None
    await a.run(SetLive(gone, person_id="bea", live=True))
    assert await redis.get(HOST_KEY.format(gone)) == a.node
    # The new host started from the stage as it was kept: Ada live with her audio muted.
    (ada, bea) = a.local.server.stage(gone)["publishers"]
    assert ada["person_id"] == "ada" and ada["live"] and ada["muted"]["audio"]
    assert bea["person_id"] == "bea" and bea["live"]

    # A host that listens but does not answer: the call fails with a code people can act on.
    monkeypatch.setattr(stage_hosts, "CALL_TIMEOUT", 0.5)
    stuck = new_session()
    pubsub = redis.pubsub()
    await pubsub.subscribe(NODE_CHANNEL.format("a-stuck-process"))
    try:
        await redis.set(HOST_KEY.format(stuck), "a-stuck-process", px=30_000)
        with pytest.raises(MediaError) as unavailable:
            await a.run(SetLive(stuck, person_id="ada", live=True))
        assert unavailable.value.code == "media.unavailable"
    finally:
        await pubsub.aclose()


async def test_one_process_runs_every_call_itself_without_redis(tmp_path: Path) -> None:
    media = MediaServer(ice_servers=[], recordings_dir=tmp_path, send=_no_send)
    try:
        async with (
            open_link("memory://") as link,
            open_stage_hosts(link, LocalMedia(media), lambda offer: False) as hosts,
        ):
            session = new_session()
            stage = (await hosts.run(SetLive(session, person_id="x", live=True))).stage
            assert stage.live == ("x",) and media.stage(session)["live"] == ["x"]
    finally:
        await media.close()
