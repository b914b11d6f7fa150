"""The organiser's story: sign in, add a session, invite a speaker who lands in the green room."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Contexts, DaisServer

pytestmark = pytest.mark.browser


async def test_organiser_invites_a_speaker_who_lands_in_the_green_room_with_a_camera(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """The organiser signs in, adds a session, makes a speaker invite link and copies it; the
    speaker opens it in another browser, presses Continue and lands signed in as speaker in the
    green room, with the fake camera playing in the preview."""
    organiser = await (await contexts.new(viewport={"width": 1280, "height": 900})).new_page()
    await organiser.goto("/organiser")
    await organiser.get_by_label("Email").fill(dais_server.organiser_email)
    await organiser.get_by_label("Password").fill(dais_server.organiser_password)
    await organiser.get_by_role("button", name="Sign in").click()
    await expect(organiser.get_by_role("heading", name="Organiser console")).to_be_visible()
    await expect(organiser.get_by_label("Title").first).to_have_value(
        "Tackling Stalking Digital Conference"
    )
    await expect(organiser.locator('[data-slot="registrations"]')).to_have_text(
        re.compile(r"^\d+$")
    )

    await organiser.get_by_text("Add a session").click()
    form = organiser.locator(".session-form").last
    await form.get_by_label("Title").fill("Supporting victims online")
    await form.get_by_label("Starts (Europe/London)").fill("2027-03-04T16:30")
    await form.get_by_label("Ends (Europe/London)").fill("2027-03-04T17:00")
    await form.get_by_label("Content note").fill("Discusses online abuse.")
    await form.get_by_role("button", name="Add session").click()
    item = organiser.locator(".org-session", has_text="Supporting victims online")
    await expect(item).to_be_visible()
    await expect(item.locator(".agenda-time")).to_have_text("16:30–17:00")

    await item.get_by_role("button", name="Invite").click()
    invite = item.locator(".invite-form")
    await invite.get_by_label("Role").select_option("speaker")
    await invite.get_by_label("Name").fill("Dr Ada Example")
    await invite.get_by_label("Affiliation").fill("Online Safety Research")
    await invite.get_by_role("button", name="Make invite link").click()
    link = invite.get_by_label("Invite link for Dr Ada Example")
    await expect(link).to_have_value(re.compile(r"/invite/"))
    url = await link.input_value()
    assert url.startswith(dais_server.base_url)
    await expect(invite.get_by_role("button", name="Copy link")).to_be_visible()
    await expect(organiser.locator(".people")).to_contain_text("Dr Ada Example")
    # The reports: audit log, recordings and the attendance chart (each with its table).
    for heading in ("Audit log", "Recordings", "Attendance"):
        await expect(organiser.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    for slot in ("audit", "recordings", "attendance"):
        await expect(organiser.locator(f'[data-slot="{slot}"]')).not_to_contain_text("Loading")
    await organiser.evaluate("scrollTo(0, 0)")
    await organiser.screenshot(path=artifacts / "organiser-console.png", full_page=True)

    speaker = await (await contexts.new(viewport={"width": 1280, "height": 900})).new_page()
    await speaker.goto(url)
    await expect(speaker.get_by_role("heading", name="Welcome, Dr Ada Example")).to_be_visible()
    await speaker.evaluate("scrollTo(0, 0)")
    await speaker.screenshot(path=artifacts / "invite-confirmation.png", full_page=True)
    await speaker.get_by_role("button", name="Continue").click()
    await speaker.wait_for_url(re.compile(r"/e/tackling-stalking/sessions/\w+$"))
    me = await (await speaker.request.get("/api/auth/me")).json()
    assert me["participant"]["display_name"] == "Dr Ada Example"
    assert list(me["roles"].values()) == ["speaker"]

    await expect(speaker.get_by_text("Green room", exact=True)).to_be_visible()
    await expect(speaker.get_by_role("heading", name="Supporting victims online")).to_be_visible()
    await expect(speaker.locator('[data-slot="on-air"]')).to_contain_text("Attendees cannot see")
    preview = speaker.get_by_label("Your camera preview")
    await expect(preview).to_be_visible()
    await speaker.wait_for_function(
        "() => { const v = document.querySelector('[data-slot=preview]');"
        " return v && v.videoWidth > 0 && !v.paused; }"
    )
    await expect(speaker.get_by_label("Camera", exact=True)).not_to_have_value("")
    await expect(speaker.get_by_role("button", name="Share screen")).to_be_visible()
    await speaker.wait_for_timeout(300)
    await speaker.evaluate("scrollTo(0, 0)")
    await speaker.screenshot(path=artifacts / "speaker-green-room.png", full_page=True)


async def test_chair_sees_the_chair_console(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """A chair opening the session page gets the console: queue, green room with each speaker's
    controls, chat moderation, polls, announcements and the clock against the agenda."""
    session = next(
        s
        for s in dais_server.get(f"/api/events/{dais_server.slug}/agenda").json()["sessions"]
        if any(p["display_name"] == "Jess Phillips MP" for p in s["speakers"])
    )
    organiser = await (await contexts.new()).new_page()
    await organiser.goto("/organiser")
    await organiser.request.post(
        "/api/auth/sign-in",
        data={"email": dais_server.organiser_email, "password": dais_server.organiser_password},
        headers=dais_server.same_origin,
    )
    made = await organiser.request.post(
        f"/api/sessions/{session['id']}/invites",
        data={"role": "chair", "display_name": "Casey Chair"},
        headers=dais_server.same_origin,
    )
    assert made.status == 201
    url = (await made.json())["url"]

    chair = await (await contexts.new(viewport={"width": 1280, "height": 1000})).new_page()
    await chair.goto(url)
    await chair.get_by_role("button", name="Continue").click()
    await expect(chair.get_by_text("Chair console")).to_be_visible()
    for heading in (
        "Moderation queue",
        "Green room",
        "Approved questions",
        "Chat",
        "Polls",
        "Announcements",
    ):
        await expect(chair.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    await expect(chair.locator(".speaker-tiles")).to_contain_text("Jess Phillips MP")
    await expect(chair.locator("#connection")).to_have_attribute("data-state", "live")
    # Speakers who have not opened their green room have no stage controls yet.
    await expect(chair.locator(".speaker-tile", has_text="Jess Phillips MP")).to_contain_text(
        "Not here yet"
    )
    await expect(chair.locator('[data-slot="clock"]')).to_contain_text("Starts at")
    await chair.evaluate("scrollTo(0, 0)")
    await chair.screenshot(path=artifacts / "chair-console.png", full_page=True)
