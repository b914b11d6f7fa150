"""Several server processes serve one event: fan-out through Redis, one seq sequence per room."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.chat.conftest import Live, Server, World
from tests.conftest import REDIS_URL
from tests.serving import dais_server

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
