"""Stories of organisers scheduling at the edges of the calendar: the last and first days Dais
supports, time zones fourteen hours either side of UTC, clocks that skip or repeat midnight.

Dais schedules events on days from 2000-01-01 to 2099-12-31. Dates past that used to reach
Python's date arithmetic and come back as HTTP 500; now they are a 422 naming the field.
"""

from __future__ import annotations

from datetime import date

from icalendar import Calendar
from sqlalchemy import update

from app.event.models import Event
from tests.app.helpers import new_event, new_session, refused_fields, signed_in_organiser


async def test_an_event_ending_on_9999_12_31_in_kiritimati_is_refused_naming_ends_on(app, clients):
    """SECURITY 10: the reported sequence (an event ending 9999-12-31 in UTC+14, then a session)
    is refused at the first step with a 422 naming `ends_on`; nothing is created."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        for starts_on in ("9999-12-31", "2099-12-31"):
            refused = await new_event(
                organiser, starts_on=starts_on, ends_on="9999-12-31", timezone="Pacific/Kiritimati"
            )
            assert "ends_on" in refused_fields(refused)
            assert refused.json()["error"]["code"] == "request.invalid"
            message = refused.json()["error"]["fields"][-1]["message"]
            assert "2000-01-01 to 2099-12-31" in message
        assert (await organiser.get("/api/events/mine")).json() == []


async def test_the_last_supported_day_in_kiritimati_takes_sessions_up_to_its_last_minute(
    app, clients
):
    """SECURITY 10: on 2099-12-31 in UTC+14 a session may run to local midnight; one later, or
    one sent with a year-9999 or year-1 time, is a 422 naming its field, never a 500. The agenda,
    its calendar file and the event page all serve the event."""
    async with clients.browser() as organiser, clients.browser() as visitor:
        await signed_in_organiser(app, organiser)
        created = await new_event(
            organiser,
            starts_on="2099-12-31",
            ends_on="2099-12-31",
            timezone="Pacific/Kiritimati",
            published=True,
        )
        assert created.status_code == 201, created.text
        event = created.json()

        last = await new_session(
            organiser, event["id"], "2099-12-31T23:00:00+14:00", "2100-01-01T00:00:00+14:00"
        )
        assert last.status_code == 201, last.text
        too_late = await new_session(
            organiser, event["id"], "2099-12-31T23:00:00+14:00", "2100-01-01T00:01:00+14:00"
        )
        assert refused_fields(too_late) == ["ends_at"]
        assert too_late.json()["error"]["code"] == "session.outside_event"
        for starts_at, ends_at, field in [
            ("9999-12-31T10:00:00+14:00", "9999-12-31T11:00:00+14:00", "starts_at"),
            ("2099-12-31T10:00:00+14:00", "9999-12-31T23:59:59-23:59", "ends_at"),
            ("0001-01-01T00:30:00+14:00", "2099-12-31T11:00:00+14:00", "starts_at"),
        ]:
            assert field in refused_fields(
                await new_session(organiser, event["id"], starts_at, ends_at)
            )

        agenda = (await visitor.get(f"/api/events/{event['slug']}/agenda")).json()
        assert [(s["starts_at"], s["ends_at"]) for s in agenda["sessions"]] == [
            ("2099-12-31T09:00:00Z", "2099-12-31T10:00:00Z")
        ]
        ics = await visitor.get(f"/api/events/{event['slug']}/agenda.ics")
        assert ics.status_code == 200
        (entry,) = Calendar.from_ical(ics.content).walk("VEVENT")
        assert entry["DTEND"].dt.isoformat() == "2099-12-31T10:00:00+00:00"
        page = await visitor.get(f"/e/{event['slug']}")
        assert page.status_code == 200
        session_page = await visitor.get(f"/e/{event['slug']}/sessions/{last.json()['id']}")
        assert session_page.status_code == 200


async def test_moving_an_event_with_sessions_past_the_supported_days_is_refused(app, clients):
    """SECURITY 10: PATCHing `ends_on` to 9999-12-31 (or `starts_on` to year 1) on an event with
    sessions is a 422 naming the field; moving its time zone so a session falls outside names
    `timezone`; the event stays as it was."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        created = await new_event(
            organiser, starts_on="2099-12-31", ends_on="2099-12-31", timezone="Europe/London"
        )
        event = created.json()
        session = await new_session(
            organiser, event["id"], "2099-12-31T10:00:00+00:00", "2099-12-31T11:00:00+00:00"
        )
        assert session.status_code == 201, session.text
        url = f"/api/events/{event['id']}"

        for body, field in [
            ({"ends_on": "9999-12-31"}, "ends_on"),
            ({"ends_on": "9999-12-31", "timezone": "Pacific/Kiritimati"}, "ends_on"),
            ({"starts_on": "0001-01-01"}, "starts_on"),
            ({"starts_on": "2100-01-01", "ends_on": "2100-01-01"}, "starts_on"),
            # 10:00 UTC is already 2100-01-01 in Kiritimati.
            ({"timezone": "Pacific/Kiritimati"}, "timezone"),
            ({"starts_on": "2099-12-30", "ends_on": "2099-12-30"}, "ends_on"),
        ]:
            assert field in refused_fields(await organiser.patch(url, json=body)), body

        settings = (await organiser.get(f"{url}/settings")).json()
        assert (settings["starts_on"], settings["ends_on"], settings["timezone"]) == (
            "2099-12-31",
            "2099-12-31",
            "Europe/London",
        )
        # Moving to a zone that still holds the session is fine.
        moved = await organiser.patch(url, json={"timezone": "America/New_York"})
        assert moved.status_code == 200, moved.text


async def test_the_first_supported_day_in_zones_behind_utc(app, clients):
    """SECURITY 10: 2000-01-01 in Pacific/Pago_Pago (UTC-11) and Etc/GMT+12 (UTC-12) takes a
    session at local midnight; the day before, year 1, and a session before local midnight are
    422s naming the field."""
    async with clients.browser() as organiser, clients.browser() as visitor:
        await signed_in_organiser(app, organiser)
        for zone, offset in (("Pacific/Pago_Pago", "-11:00"), ("Etc/GMT+12", "-12:00")):
            for starts_on in ("1999-12-31", "0001-01-01"):
                refused = await new_event(
                    organiser, starts_on=starts_on, ends_on="2000-01-01", timezone=zone
                )
                assert refused_fields(refused) == ["starts_on"]

            created = await new_event(
                organiser,
                starts_on="2000-01-01",
                ends_on="2000-01-01",
                timezone=zone,
                published=True,
            )
            assert created.status_code == 201, created.text
            event = created.json()
            first = await new_session(
                organiser,
                event["id"],
                f"2000-01-01T00:00:00{offset}",
                f"2000-01-01T01:00:00{offset}",
            )
            assert first.status_code == 201, first.text
            early = await new_session(
                organiser,
                event["id"],
                f"1999-12-31T23:59:00{offset}",
                f"2000-01-01T01:00:00{offset}",
            )
            assert refused_fields(early) == ["starts_at"]
            year_one = await new_session(
                organiser, event["id"], "0001-01-01T00:00:00-12:00", f"2000-01-01T01:00:00{offset}"
            )
            assert refused_fields(year_one) == ["starts_at"]

            ics = await visitor.get(f"/api/events/{event['slug']}/agenda.ics")
            (entry,) = Calendar.from_ical(ics.content).walk("VEVENT")
            utc_hour = offset[1:3]
            assert entry["DTSTART"].dt.isoformat() == f"2000-01-01T{utc_hour}:00:00+00:00"
            assert (await visitor.get(f"/e/{event['slug']}")).status_code == 200


async def test_a_day_whose_midnight_a_clock_change_skips_starts_after_the_gap(app, clients):
    """SECURITY 10: in Beirut on 2027-03-28 clocks jump from 00:00 to 01:00, so the day starts at
    01:00 EEST (22:00 UTC the day before): a session then is accepted, one an hour earlier is a
    422 naming `starts_at`. A wall time inside the gap, sent with its offset, is an instant like
    any other."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        created = await new_event(
            organiser, starts_on="2027-03-28", ends_on="2027-03-28", timezone="Asia/Beirut"
        )
        event = created.json()
        before = await new_session(
            organiser, event["id"], "2027-03-28T00:00:00+03:00", "2027-03-28T02:00:00+03:00"
        )
        assert refused_fields(before) == ["starts_at"]
        first = await new_session(
            organiser, event["id"], "2027-03-28T01:00:00+03:00", "2027-03-28T02:00:00+03:00"
        )
        assert first.status_code == 201, first.text
        in_the_gap = await new_session(
            organiser, event["id"], "2027-03-28T00:30:00+02:00", "2027-03-28T02:00:00+03:00"
        )
        assert in_the_gap.status_code == 201, in_the_gap.text
        stored = await organiser.get(f"/api/sessions/{in_the_gap.json()['id']}")
        assert stored.json()["starts_at"] == "2027-03-27T22:30:00Z"


async def test_a_day_whose_next_midnight_comes_twice_ends_at_the_first(app, clients):
    """SECURITY 10: in Havana clocks go back from 01:00 to 00:00 on 2027-11-07, so midnight comes
    twice; an event on 2027-11-06 ends at the first (04:00 UTC) and a session running to the
    second is a 422 naming `ends_at`."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        created = await new_event(
            organiser, starts_on="2027-11-06", ends_on="2027-11-06", timezone="America/Havana"
        )
        event = created.json()
        first_midnight = await new_session(
            organiser, event["id"], "2027-11-06T23:00:00-04:00", "2027-11-07T00:00:00-04:00"
        )
        assert first_midnight.status_code == 201, first_midnight.text
        second_midnight = await new_session(
            organiser, event["id"], "2027-11-06T23:00:00-04:00", "2027-11-07T00:00:00-05:00"
        )
        assert refused_fields(second_midnight) == ["ends_at"]


async def test_names_that_are_not_time_zones_are_refused_naming_timezone(app, clients):
    """SECURITY 10: a directory of the zone database, a file in it that is no zone, a path, the
    server's own `localtime` or an empty name is a 422 naming `timezone`, never a 500."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        for zone in ("America", "zone.tab", "../../etc/passwd", "/etc/localtime", "localtime", ""):
            refused = await new_event(
                organiser, starts_on="2027-01-01", ends_on="2027-01-01", timezone=zone
            )
            assert refused_fields(refused) == ["timezone"], zone
        created = await new_event(
            organiser, starts_on="2027-01-01", ends_on="2027-01-01", timezone="Europe/London"
        )
        refused = await organiser.patch(
            f"/api/events/{created.json()['id']}", json={"timezone": "America"}
        )
        assert refused_fields(refused) == ["timezone"]


async def test_events_end_on_or_after_their_first_day_and_last_at_most_a_year(app, clients):
    """SECURITY 10: an event ending before it starts, or spanning the whole century, is a 422
    naming `ends_on`; a year-long event is fine, and a session may not outrun it."""
    async with clients.browser() as organiser:
        await signed_in_organiser(app, organiser)
        backwards = await new_event(organiser, starts_on="2027-03-05", ends_on="2027-03-04")
        assert refused_fields(backwards) == ["ends_on"]
        assert backwards.json()["error"]["code"] == "event.ends_before_start"
        century = await new_event(organiser, starts_on="2000-01-01", ends_on="2099-12-31")
        assert refused_fields(century) == ["ends_on"]
        assert century.json()["error"]["code"] == "event.too_long"

        year = await new_event(
            organiser, starts_on="2028-01-01", ends_on="2028-12-31", timezone="Etc/GMT-14"
        )
        assert year.status_code == 201, year.text
        event_id = year.json()["id"]
        whole_year = await new_session(
            organiser, event_id, "2028-01-01T00:00:00+14:00", "2029-01-01T00:00:00+14:00"
        )
        assert whole_year.status_code == 201, whole_year.text
        longer = await new_session(
            organiser, event_id, "2028-01-01T00:00:00+14:00", "2099-12-31T00:00:00+14:00"
        )
        assert refused_fields(longer) == ["ends_at"]
        stretched = await organiser.patch(f"/api/events/{event_id}", json={"ends_on": "2029-01-01"})
        assert refused_fields(stretched) == ["ends_on"]
        assert stretched.json()["error"]["code"] == "event.too_long"


async def test_an_event_stored_with_dates_past_the_bounds_refuses_sessions_not_crashes(
    app, clients
):
    """SECURITY 10: an event row saved before the bounds existed (9999-12-31 in UTC+14) still
    serves its agenda, calendar file and page; adding a session is a 422
    `event.dates_out_of_range`, never the OverflowError it used to be."""
    async with clients.browser() as organiser, clients.browser() as visitor:
        await signed_in_organiser(app, organiser)
        created = await new_event(
            organiser,
            starts_on="2027-01-01",
            ends_on="2027-01-01",
            timezone="Pacific/Kiritimati",
            published=True,
        )
        event = created.json()
        async with app.state.sessionmaker() as db:
            await db.execute(
                update(Event)
                .where(Event.id == event["id"])
                .values(starts_on=date(9999, 12, 31), ends_on=date(9999, 12, 31))
            )
            await db.commit()

        session = await new_session(
            organiser, event["id"], "2099-12-31T10:00:00+14:00", "2099-12-31T11:00:00+14:00"
        )
        assert refused_fields(session) == ["starts_at"]
        assert session.json()["error"]["code"] == "event.dates_out_of_range"
        retitled = await organiser.patch(f"/api/events/{event['id']}", json={"title": "Renamed"})
        assert retitled.status_code == 200, retitled.text

        for url in (
            f"/api/events/{event['slug']}/agenda",
            f"/api/events/{event['slug']}/agenda.ics",
            f"/e/{event['slug']}",
        ):
            assert (await visitor.get(url)).status_code == 200, url
