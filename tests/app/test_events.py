"""Stories of organisers building an event and its agenda, and of anyone reading it."""

from __future__ import annotations

from icalendar import Calendar

from tests.app.helpers import organiser_with_event, signed_in_organiser


async def test_organiser_builds_an_event_that_anyone_can_read(app, clients):
    async with clients.browser() as organiser, clients.browser() as visitor:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        assert story.event["slug"] == "tackling-stalking"

        changed = await organiser.patch(
            f"/api/events/{event_id}",
            json={"description": "A day on stalking.", "replays_enabled": True},
        )
        assert changed.status_code == 200
        assert changed.json()["description"] == "A day on stalking."

        listed = await visitor.get("/api/events")
        assert [e["title"] for e in listed.json()] == ["Tackling Stalking"]
        # Organiser-only settings are not in the public view.
        assert "word_filter" not in listed.json()[0]

        agenda = (await visitor.get(f"/api/events/{story.event['slug']}/agenda")).json()
        assert agenda["description"] == "A day on stalking."
        assert [s["title"] for s in agenda["sessions"]] == ["Legally defining stalking"]
        session = agenda["sessions"][0]
        assert session["moderation_required"] is True
        assert session["anonymous_questions_allowed"] is True
        assert session["chair"] is None and session["speakers"] == []


async def test_drafts_are_hidden_from_everyone_but_their_organiser(app, clients):
    async with clients.browser() as organiser, clients.browser() as visitor:
        await signed_in_organiser(app, organiser)
        draft = await organiser.post(
            "/api/events",
            json={"title": "Draft", "starts_on": "2027-01-01", "ends_on": "2027-01-01"},
        )
        assert draft.status_code == 201
        assert (await visitor.get("/api/events")).json() == []
        hidden = await visitor.get(f"/api/events/{draft.json()['id']}/agenda")
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "event.not_found"
        assert (await organiser.get(f"/api/events/{draft.json()['id']}/agenda")).status_code == 200
        mine = await organiser.get("/api/events/mine")
        assert [e["title"] for e in mine.json()] == ["Draft"]


async def test_only_the_events_organiser_may_change_it(app, clients):
    async with (
        clients.browser() as organiser,
        clients.browser() as other,
        clients.browser() as anonymous,
        clients.browser() as attendee,
    ):
        story = await organiser_with_event(app, organiser)
        event_id, session_id = story.event["id"], story.session["id"]
        await signed_in_organiser(app, other, email="other@example.org")
        await attendee.post(f"/api/events/{event_id}/register", json={"display_name": "Sam"})

        attempts = [
            ("PATCH", f"/api/events/{event_id}", {"title": "Hijacked"}),
            ("POST", f"/api/events/{event_id}/sessions", {**story.session, "title": "Extra"}),
            ("PATCH", f"/api/sessions/{session_id}", {"title": "Hijacked"}),
            ("DELETE", f"/api/sessions/{session_id}", None),
            (
                "POST",
                f"/api/sessions/{session_id}/invites",
                {"role": "speaker", "display_name": "X"},
            ),
        ]
        for client, status, code in (
            (anonymous, 401, "auth.required"),
            (attendee, 403, "auth.forbidden"),
            (other, 403, "auth.forbidden"),
        ):
            for method, url, body in attempts:
                response = await client.request(method, url, json=body)
                assert response.status_code == status, (method, url, response.text)
                assert response.json()["error"]["code"] == code

        agenda = (await anonymous.get(f"/api/events/{event_id}/agenda")).json()
        assert agenda["title"] == "Tackling Stalking"
        assert [s["title"] for s in agenda["sessions"]] == ["Legally defining stalking"]


async def test_bad_input_is_refused_naming_the_field_and_nothing_changes(app, clients):
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id, session_id = story.event["id"], story.session["id"]
        session = {k: story.session[k] for k in ("title", "kind", "starts_at", "ends_at")}
        cases = [
            (
                f"/api/events/{event_id}/sessions",
                "POST",
                {**session, "ends_at": "2027-03-04T09:00:00+00:00"},
                "ends_at",
            ),
            (
                f"/api/events/{event_id}/sessions",
                "POST",
                {
                    **session,
                    "starts_at": "2027-03-05T09:00:00+00:00",
                    "ends_at": "2027-03-05T10:00:00+00:00",
                },
                "ends_at",
            ),
            (f"/api/events/{event_id}/sessions", "POST", {**session, "title": "x" * 201}, "title"),
            (f"/api/events/{event_id}/sessions", "POST", {**session, "kind": "party"}, "kind"),
            (
                f"/api/events/{event_id}/sessions",
                "POST",
                {**session, "starts_at": "2027-03-04T10:00:00"},
                "starts_at",
            ),
            (f"/api/events/{event_id}", "PATCH", {"timezone": "Mars/Olympus"}, "timezone"),
            (f"/api/events/{event_id}", "PATCH", {"ends_on": "2027-03-01"}, "ends_on"),
            (
                f"/api/events/{event_id}",
                "PATCH",
                {"starts_on": "2027-03-05", "ends_on": "2027-03-05"},
                "starts_on",
            ),
            (f"/api/events/{event_id}", "PATCH", {"title": None}, "title"),
            (
                f"/api/sessions/{session_id}",
                "PATCH",
                {"ends_at": "2027-03-04T10:00:00+00:00"},
                "ends_at",
            ),
        ]
        for url, method, body, field in cases:
            response = await organiser.request(method, url, json=body)
            assert response.status_code == 422, (body, response.text)
            fields = [f["field"] for f in response.json()["error"]["fields"]]
            assert field in fields, (body, response.json())

        malformed = await organiser.post(
            f"/api/events/{event_id}/sessions",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert malformed.status_code == 422

        agenda = (await organiser.get(f"/api/events/{event_id}/agenda")).json()
        assert agenda["timezone"] == "Europe/London"
        assert agenda["ends_on"] == "2027-03-04"
        assert [(s["title"], s["ends_at"]) for s in agenda["sessions"]] == [
            ("Legally defining stalking", "2027-03-04T11:00:00Z")
        ]


async def test_unknown_ids_answer_404_with_a_code(clients, app):
    async with clients.browser() as visitor:
        for url, code in [
            ("/api/events/nope", "event.not_found"),
            ("/api/events/nope/agenda", "event.not_found"),
            ("/api/events/nope/agenda.ics", "event.not_found"),
            ("/api/sessions/nope", "session.not_found"),
            ("/api/no/such/route", "http.not_found"),
        ]:
            response = await visitor.get(url)
            assert response.status_code == 404
            assert response.json()["error"]["code"] == code


async def test_the_agenda_downloads_as_a_calendar_file(app, clients):
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        await organiser.post(
            f"/api/sessions/{story.session['id']}/invites",
            json={
                "role": "speaker",
                "display_name": "Dr Emma Short",
                "affiliation": "National Centre for Cyberstalking Research",
            },
        )
        response = await organiser.get(f"/api/events/{story.event['slug']}/agenda.ics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/calendar")
        assert "attachment" in response.headers["content-disposition"]
        calendar = Calendar.from_ical(response.content)
        (entry,) = calendar.walk("VEVENT")
        assert str(entry["SUMMARY"]) == "Legally defining stalking"
        assert entry["DTSTART"].dt.isoformat() == "2027-03-04T10:15:00+00:00"
        assert entry["DTEND"].dt.isoformat() == "2027-03-04T11:00:00+00:00"
        assert "Dr Emma Short (National Centre for Cyberstalking Research)" in str(
            entry["DESCRIPTION"]
        )
        assert all(len(line) <= 75 for line in response.content.split(b"\r\n"))
