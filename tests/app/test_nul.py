"""NUL characters, which PostgreSQL's text cannot hold, are refused with a 422 naming where they
were, on every route and both databases, and nothing is stored (SECURITY 10)."""

from __future__ import annotations

from tests.app.helpers import organiser_with_event


async def test_nul_in_a_body_path_or_query_is_a_422_naming_it(app, clients) -> None:
    """SECURITY 10: a NUL in a JSON body (a title, a display name, a nested field or a key), in
    a path or in a query is a 422 `request.invalid` naming it, never a 500 from the database;
    the same text without it is taken, and a literal backslash-u0000 is text like any other."""
    async with clients.browser() as organiser:
        story = await organiser_with_event(app, organiser)
        event_id = story.event["id"]
        refused = [
            ("PATCH", f"/api/events/{event_id}", {"title": "Tackling\u0000Stalking"}, "title"),
            (
                "PATCH",
                f"/api/events/{event_id}",
                {"word_filter": ["ok", "b\u0000d"]},
                "word_filter.1",
            ),
            (
                "POST",
                f"/api/events/{event_id}/register",
                {"display_name": "Ro\u0000bin"},
                "display_name",
            ),
            ("POST", "/api/events", {"ti\u0000tle": "x"}, "title"),
        ]
        for method, path, body, field in refused:
            answer = await organiser.request(method, path, json=body)
            assert answer.status_code == 422, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "request.invalid"
            assert error["fields"] == [
                {"field": field, "message": "Text cannot contain NUL characters."}
            ]
        for path, field in [
            ("/api/events/%00", "path"),
            (f"/api/events/{event_id}/audit?action=%00", "action"),
        ]:
            answer = await organiser.get(path)
            assert (
                answer.status_code == 422 and answer.json()["error"]["fields"][0]["field"] == field
            )
        assert (await organiser.get(f"/api/events/{event_id}")).json()[
            "title"
        ] == "Tackling Stalking"
        kept = await organiser.patch(f"/api/events/{event_id}", json={"title": "Back\\u0000slash"})
        assert kept.status_code == 200 and kept.json()["title"] == "Back\\u0000slash"
