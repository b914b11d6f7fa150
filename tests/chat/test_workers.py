"""Several server processes serve one event: fan-out through Redis, one seq sequence per room."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.chat.conftest import Live, Server, World
from tests.conftest import REDIS_URL
from tests.serving import dais_process, dais_server, free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_question_approved_on_one_worker_reaches_attendees_on_another(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """Two `dais serve` processes on one database with `DAIS_BUS_URL=redis://…`: what the chair
    does through one reaches attendees connected to the other, exactly once, with seqs that both
    processes take from the same counter."""
    with ExitStack() as stack:
        urls = [
            stack.enter_context(dais_server(database_url, tmp_path, bus_url=REDIS_URL))
            for _ in range(2)
        ]
        first, second = (Server(url=url, settings=None, app=None) for url in urls)  # type: ignore[arg-type]
        ada = await Live.join(first, world.session_id, world.attendees[0])
        chair = await Live.join(first, world.session_id, world.chair)
        bea = await Live.join(second, world.session_id, world.attendees[1])
        speaker = await Live.join(second, world.session_id, world.speaker)

        question_id = (await ada.ok("question.ask", text="Across workers?", anonymous=True))[
            "question"
        ]["id"]
        await chair.event("question.submitted")
        await chair.ok("question.approve", question_id=question_id)
        for person in (bea, speaker, ada):
            approved = await person.event("question.approved")
            assert approved["question"]["id"] == question_id
            assert approved["question"]["asker"] is None
            await person.nothing(0.3)

        await bea.ok("chat.send", text="from the second worker")
        await ada.ok("chat.send", text="from the first worker")
        seqs = []
        for text in ("from the second worker", "from the first worker"):
            frame = await speaker.event("message.posted")
            assert frame["message"]["text"] == text
            seqs.append(frame["seq"])
        assert seqs[0] + 1 == seqs[1] and seqs[0] == approved["seq"] + 1

        # Watching counts add up across processes (each announces its own once a second).
        await asyncio.sleep(1.5)
        cy = await Live.join(second, world.session_id, world.attendees[2])
        assert cy.joined is not None and cy.joined["watching"] == 5


async def test_the_stage_works_across_workers_hosted_by_one_of_them(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """A session's media lives in one process: the first asked hosts it (a lease in Redis) and the
    other relays its calls there. A speaker publishing through one `dais serve` process reaches an
    attendee connected to another: the chair there puts them live, the attendee's connection is
    renegotiated by the host and receives the video, and joins on either process show the host's
    stage. When the hosting process is killed, the next call makes the other one the host."""
    from tests.chat.test_stage import Tab, until
    from tests.streaming.media_clients import eventually, wait_connected

    with ExitStack() as stack:
        ports = [free_port(), free_port()]
        host_process = stack.enter_context(
            dais_process(database_url, tmp_path, ports[0], bus_url=REDIS_URL)
        )
        stack.enter_context(dais_process(database_url, tmp_path, ports[1], bus_url=REDIS_URL))
        first, second = (
            Server(url=f"http://127.0.0.1:{port}", settings=None, app=None)  # type: ignore[arg-type]
            for port in ports
        )
        speaker = Tab(await Live.join(first, world.session_id, world.speaker))
        chair = Tab(await Live.join(second, world.session_id, world.chair))
        attendee = Tab(await Live.join(second, world.session_id, world.attendees[0]))
        tabs = [speaker, chair, attendee]
        try:
            await speaker.publish()  # the first process hosts the stage from now on
            assert speaker.publisher is not None
            await wait_connected(speaker.publisher)
            green = await until(
                chair.live, "green_room.changed", where=lambda f: f["stage"]["presenters"]
            )
            assert green["stage"]["presenters"][0]["person_id"] == world.speaker_id

            offer = await attendee.watch()
            assert offer["tracks"] == []
            await chair.live.ok("stage.go_live", person_id=world.speaker_id)
            await until(attendee.live, "stage.changed", where=lambda f: f["stage"]["live"])
            offered = await attendee.take_offer()  # made by the host, relayed to this process
            assert {t["kind"] for t in offered["tracks"]} == {"audio", "video"}
            await eventually(lambda: attendee.viewer.counter("video").frames > 10, timeout=8)

            # Joining through the other process shows the host's stage.
            late = await Live.join(second, world.session_id, world.attendees[1])
            assert late.joined is not None and late.joined["stage"]["live"] == [world.speaker_id]
            await late.close()

            # The host is killed: its channel has no listener, so the next call releases its
            # lease, and the second process hosts the stage from then on, starting from the stage
            # as it was (kept in Redis): the speaker is still live once they publish again.
            host_process.kill()
            host_process.wait()
            await speaker.close()
            speaker = Tab(await Live.join(second, world.session_id, world.speaker))
            tabs[0] = speaker
            assert speaker.live.joined is not None
            assert speaker.live.joined["green_room"]["live"] == []  # nobody hosts it yet
            await speaker.publish()
            assert speaker.publisher is not None
            await wait_connected(speaker.publisher)
            viewer = Tab(await Live.join(second, world.session_id, world.attendees[2]))
            assert viewer.live.joined is not None
            assert viewer.live.joined["stage"]["live"] == [
                world.speaker_id
            ]  # the chair did nothing
            tabs.append(viewer)
            offer = await viewer.watch()
            assert {t["kind"] for t in offer["tracks"]} == {"audio", "video"}
            await eventually(lambda: viewer.viewer.counter("video").frames > 10, timeout=8)
        finally:
            for tab in tabs:
                await tab.close()
