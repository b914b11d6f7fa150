"""Small story steps shared by the foundation tests: an organiser with an event and a session."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from app.people.service import create_organiser

PASSWORD = "correct horse battery"


@dataclass
class OrganiserStory:
    browser: httpx.AsyncClient
    event: dict
    session: dict


async def signed_in_organiser(app, browser: httpx.AsyncClient, email: str = "org@example.org"):
    async with app.state.sessionmaker() as db:
        await create_organiser(db, email=email, name="Org", password=PASSWORD)
    response = await browser.post("/api/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def organiser_with_event(app, browser: httpx.AsyncClient) -> OrganiserStory:
    await signed_in_organiser(app, browser)
    event = await browser.post(
        "/api/events",
        json={
            "title": "Tackling Stalking",
            "starts_on": "2027-03-04",
            "ends_on": "2027-03-04",
            "timezone": "Europe/London",
            "published": True,
        },
    )
    assert event.status_code == 201, event.text
    session = await browser.post(
        f"/api/events/{event.json()['id']}/sessions",
        json={
            "title": "Legally defining stalking",
            "kind": "talk",
            "starts_at": "2027-03-04T10:15:00+00:00",
            "ends_at": "2027-03-04T11:00:00+00:00",
        },
    )
    assert session.status_code == 201, session.text
    return OrganiserStory(browser, event.json(), session.json())


async def new_event(browser: httpx.AsyncClient, **fields: object) -> httpx.Response:
    """POST an event titled after its dates; `fields` override or add to the body."""
    body = {"title": f"Event {fields.get('starts_on')} {fields.get('timezone')}", **fields}
    return await browser.post("/api/events", json=body)


async def new_session(
    browser: httpx.AsyncClient, event_id: str, starts_at: str, ends_at: str
) -> httpx.Response:
    return await browser.post(
        f"/api/events/{event_id}/sessions",
        json={"title": "Boundary talk", "starts_at": starts_at, "ends_at": ends_at},
    )


def refused_fields(response: httpx.Response) -> list[str]:
    """The fields a 422 names; fails the test on any other answer."""
    assert response.status_code == 422, response.text
    return [f["field"] for f in response.json()["error"]["fields"]]
