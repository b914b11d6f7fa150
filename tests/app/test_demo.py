"""The demo event is the seed's conference; loading it twice changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from app.demo import demo_invite_links, load_demo
from migrations.models import Base


async def _counts(db) -> dict[str, int]:
    return {
        name: await db.scalar(select(func.count()).select_from(table))
        for name, table in Base.metadata.tables.items()
    }


async def test_the_demo_loads_once_and_its_invite_links_sign_people_in(app, clients, settings):
    async with app.state.sessionmaker() as db:
        event = await load_demo(db, settings)
        links = await demo_invite_links(db, settings, event)
        before = await _counts(db)
        await load_demo(db, settings)
        assert [link.url for link in await demo_invite_links(db, settings, event)] == [
            link.url for link in links
        ]
        assert await _counts(db) == before

    assert before["events"] == 1 and before["sessions"] == 8
    assert [link.label for link in links] == [
        "Chair Saskia Garner",
        "Speaker Dr Alan Underwood",
        "Speaker Dr Emma Short",
        "Speaker Dr Rachel Wheatly",
        "Speaker Jess Phillips MP",
        "Speaker Professor Clive Ruggles",
    ]

    async with clients.browser() as visitor:
        agenda = (await visitor.get("/api/events/tackling-stalking/agenda")).json()
        assert agenda["title"] == "Tackling Stalking Digital Conference"
        talks = [s for s in agenda["sessions"] if s["kind"] != "break"]
        assert len(talks) == 7
        assert {s["chair"]["display_name"] for s in talks} == {"Saskia Garner"}
        assert talks[0]["speakers"][0]["display_name"] == "Jess Phillips MP"
        assert talks[0]["starts_at"] == "2027-03-04T09:30:00Z"
        assert any(s["content_note"] for s in talks)

        chair = links[0].url.removeprefix("http://testserver")
        assert (await visitor.post(chair)).status_code == 303
        roles = (await visitor.get("/api/auth/me")).json()["roles"]
        assert sorted(roles.values()) == ["chair"] * 7

    # A spent link is replaced by a fresh one at the next start.
    async with app.state.sessionmaker() as db:
        fresh = await demo_invite_links(db, settings, event)
    assert fresh[0].url != links[0].url and fresh[1:] == links[1:]
