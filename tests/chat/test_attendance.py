"""The organiser charts how many people watched each session, from counts stored every minute."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from tests.chat.conftest import Live, Server, World


async def test_attendance_is_sampled_per_minute_and_drops_to_zero_when_people_leave(
    server: Server, world: World
) -> None:
    sampler = server.app.state.live.attendance
    rooms = server.app.state.live.rooms

    async def people_in_room(count: int) -> None:
        for _ in range(100):
            if rooms.local_counts()[world.session_id] == count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"the room never held {count}")

    tabs = [await Live.join(server, world.session_id, token) for token in world.attendees[:2]]
    # The same person in a second tab is still one person.
    tabs.append(await Live.join(server, world.session_id, world.attendees[0]))
    assert await sampler.sample(datetime(2027, 3, 4, 11, 20, 30, tzinfo=UTC)) == 1
    await tabs.pop().close()
    await tabs.pop().close()
    await people_in_room(1)
    await sampler.sample(datetime(2027, 3, 4, 11, 21, 5, tzinfo=UTC))
    await tabs.pop().close()
    await people_in_room(0)
    await sampler.sample(datetime(2027, 3, 4, 11, 22, 0, tzinfo=UTC))
    # An empty room is not sampled again.
    assert await sampler.sample(datetime(2027, 3, 4, 11, 23, 0, tzinfo=UTC)) == 0

    async with httpx.AsyncClient(base_url=server.url) as organiser:
        organiser.headers["authorization"] = f"Bearer {world.organiser}"
        chart = (await organiser.get(f"/api/events/{world.event_id}/attendance")).json()
        assert chart == [
            {
                "session_id": world.session_id,
                "points": [
                    {"minute": "2027-03-04T11:20:00Z", "watching": 2},
                    {"minute": "2027-03-04T11:21:00Z", "watching": 1},
                    {"minute": "2027-03-04T11:22:00Z", "watching": 0},
                ],
            }
        ]
    async with httpx.AsyncClient(base_url=server.url) as attendee:
        attendee.headers["authorization"] = f"Bearer {world.attendees[0]}"
        refused = await attendee.get(f"/api/events/{world.event_id}/attendance")
        assert refused.status_code == 403
