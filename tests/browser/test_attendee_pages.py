"""Stories an attendee tells about the pages, in a real Chromium against a real Dais."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import NEUTRAL_URL, Contexts, DaisServer

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def first_session_with_note(server: DaisServer) -> dict:
    agenda = server.get(f"/api/events/{server.slug}/agenda").json()
    return next(s for s in agenda["sessions"] if s["content_note"])


async def register(page: Page, name: str) -> None:
    await page.get_by_label("Display name").fill(name)
    await page.get_by_role("button", name="Register").click()


async def no_horizontal_scroll(page: Page) -> bool:
    return await page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )


@pytest.mark.parametrize("where", ["events", "event", "session"])
async def test_exit_control_is_first_in_tab_order_and_leaves(
    contexts: Contexts, dais_server: DaisServer, where: str
) -> None:
    """SECURITY.md line 14: on every attendee page, one Tab from page load reaches "Exit this
    page"; pressing it signs out, clears storage and replaces the page with a neutral site."""
    session = first_session_with_note(dais_server)
    path = {
        "events": "/",
        "event": f"/e/{dais_server.slug}",
        "session": f"/e/{dais_server.slug}/sessions/{session['id']}",
    }[where]
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(path)
    await page.wait_for_load_state("networkidle")
    await page.evaluate("sessionStorage.setItem('x', '1'); localStorage.setItem('y', '2')")

    entries = await page.evaluate("history.length")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "exit-this-page"
    await expect(page.locator("#exit-this-page")).to_have_text("Exit this page")

    await page.keyboard.press("Enter")
    await page.wait_for_url(NEUTRAL_URL)
    assert contexts.neutral_visits == [NEUTRAL_URL]
    # replace(), not a new history entry: Back cannot return to the Dais page.
    assert await page.evaluate("history.length") == entries
    assert await page.evaluate("sessionStorage.length + localStorage.length") == 0


async def test_shift_three_times_leaves_and_signs_out(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """SECURITY.md line 14: Shift pressed three times within a second leaves the page, and the
    attendee's sign-in is gone afterwards."""
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await register(page, "Robin")
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    assert (await page.request.get("/api/auth/me")).status == 200

    for _ in range(3):
        await page.keyboard.press("Shift")
    await page.wait_for_url(NEUTRAL_URL)
    # The sign-out is a keepalive request that may still be on its way as the page leaves.
    for _ in range(50):
        me = await context.request.get(f"{dais_server.base_url}/api/auth/me")
        if me.status == 401:
            break
        await page.wait_for_timeout(100)
    assert me.status == 401


async def test_typing_capitals_does_not_trigger_exit(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """Shift used while typing is not the exit gesture: other keys in between reset the count."""
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await page.get_by_label("Display name").click()
    for letter in "ABC":
        await page.keyboard.press(f"Shift+{letter}")
    await expect(page.get_by_label("Display name")).to_have_value("ABC")
    await page.wait_for_timeout(300)
    assert page.url.startswith(dais_server.base_url)


async def test_attendee_registers_with_a_display_name_and_reads_the_agenda_in_their_zone(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """An attendee in New York registers with only a display name; the agenda shows the 09:30
    London keynote at 04:30 their time, and says which zone the event runs on."""
    context = await contexts.new(timezone_id="America/New_York")
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Tackling Stalking Digital Conference"
    )
    await expect(page.locator("#zone-note")).to_contain_text("America/New_York")
    await expect(page.locator("#zone-note")).to_contain_text("Europe/London")
    first = page.locator(".agenda-item").first
    await expect(first.locator(".agenda-time")).to_have_text(re.compile(r"^04:30"))
    await expect(page.get_by_text("Saskia Garner").first).to_be_visible()
    await expect(page.get_by_text("Suzy Lamplugh Trust").first).to_be_visible()
    ics = page.get_by_role("link", name="Add to calendar")
    assert re.fullmatch(r"/api/events/\w+/agenda\.ics", await ics.get_attribute("href") or "")
    await expect(page.get_by_text("Never shown to anyone else")).to_be_visible()

    await register(page, "Robin")
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    await expect(page.locator("#registration")).to_contain_text("Robin")
    me = await (await page.request.get("/api/auth/me")).json()
    assert me["participant"]["display_name"] == "Robin"
    assert me["participant"]["email"] is None
    await page.evaluate("scrollTo(0, 0)")
    await page.screenshot(path=artifacts / "event-page-desktop.png", full_page=True)

    await page.reload()
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    await page.goto("/")
    await expect(
        page.get_by_role("link", name="Tackling Stalking Digital Conference")
    ).to_be_visible()
    await page.evaluate("scrollTo(0, 0)")
    await page.screenshot(path=artifacts / "events-list.png", full_page=True)


async def test_attendee_pages_fit_a_phone_without_sideways_scrolling(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """On a 390x844 phone the event page and the session page (content note, then the room)
    never scroll sideways; the session shows its connection state honestly."""
    session = first_session_with_note(dais_server)
    context = await contexts.new(viewport=PHONE, is_mobile=True, has_touch=True)
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await expect(page.locator(".agenda-item").first).to_be_visible()
    assert await no_horizontal_scroll(page)
    await page.screenshot(path=artifacts / "event-page-phone.png")

    await page.goto(f"/e/{dais_server.slug}/sessions/{session['id']}")
    await register(page, "Sam")
    await expect(page.get_by_role("heading", name="Content note")).to_be_visible()
    await expect(page.get_by_text(session["content_note"])).to_be_visible()
    assert await no_horizontal_scroll(page)
    await page.evaluate("scrollTo(0, 0)")
    await page.screenshot(path=artifacts / "session-content-note-phone.png", full_page=True)

    await page.get_by_role("button", name="Continue to the session").click()
    await expect(page.get_by_role("region", name="Stage")).to_be_visible()
    await expect(page.get_by_label("Your question")).to_be_attached()
    await expect(page.get_by_role("tab", name="Chat")).to_be_visible()
    await expect(page.get_by_role("region", name="Captions")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert await no_horizontal_scroll(page)
    await page.screenshot(path=artifacts / "session-attendee-phone.png")

    await page.get_by_role("tab", name="Chat").click()
    await expect(page.get_by_label("Message")).to_be_visible()
    assert await no_horizontal_scroll(page)
    await page.get_by_label("Message").scroll_into_view_if_needed()
    await page.screenshot(path=artifacts / "session-attendee-phone-chat.png")


async def test_session_page_for_an_attendee_on_a_desktop(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """The content note comes before the room; after Continue the room has the stage, Q&A with
    an anonymous toggle, chat, polls, reactions and the watching count."""
    session = first_session_with_note(dais_server)
    context = await contexts.new(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await register(page, "Alex")
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    await page.goto(f"/e/{dais_server.slug}/sessions/{session['id']}")
    await page.get_by_role("button", name="Continue to the session").click()
    await expect(page.get_by_label("Ask anonymously")).to_be_attached()
    await expect(page.get_by_text("watching")).to_be_visible()
    await expect(page.get_by_role("group", name="React")).to_be_visible()
    # The page joins the live room by itself and says so.
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(page.locator("#connection")).to_have_text("Live")
    await expect(page.get_by_role("button", name="Ask", exact=True)).to_be_enabled()
    await page.evaluate("scrollTo(0, 0)")
    await page.screenshot(path=artifacts / "session-attendee-desktop.png", full_page=True)
