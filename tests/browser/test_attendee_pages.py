"""Stories an attendee tells about the pages, in a real Chromium against a real Dais."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, expect

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


def first_session_without_note(server: DaisServer) -> dict:
    agenda = server.get(f"/api/events/{server.slug}/agenda").json()
    return next(s for s in agenda["sessions"] if not s["content_note"])


FOCUSED = "document.activeElement && document.activeElement !== document.body"
FOCUSED_ID = f"({FOCUSED}) ? (document.activeElement.id || document.activeElement.outerHTML) : null"


async def settled(page: Page) -> None:
    """Nothing left loading, so any focus move the page makes on loading has been made."""
    await page.wait_for_load_state("networkidle")
    await expect(page.locator("[aria-busy=true]")).to_have_count(0)


async def exit_comes_first(page: Page) -> None:
    """From where the page left focus, Tab reaches "Exit this page"; nothing before it takes
    focus (Shift+Tab from it leaves the page) and Shift+Tab from the next stop comes back to it.
    Ends with focus on the exit control."""
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED_ID) == "exit-this-page"
    await expect(page.locator("#exit-this-page")).to_have_text("Exit this page")
    await expect(page.locator("#exit-this-page")).to_be_in_viewport()
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate(FOCUSED_ID) is None
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED_ID) == "exit-this-page"
    await page.keyboard.press("Tab")
    assert await page.evaluate(FOCUSED_ID) != "exit-this-page"
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate(FOCUSED_ID) == "exit-this-page"


async def organiser(contexts: Contexts, server: DaisServer) -> BrowserContext:
    """The organiser signed in, for API calls; they carry the site's Origin as its pages do."""
    context = await contexts.new(extra_http_headers={"Origin": server.base_url})
    signed_in = await context.request.post(
        "/api/auth/sign-in",
        data={"email": server.organiser_email, "password": server.organiser_password},
    )
    assert signed_in.status == 200, await signed_in.text()
    return context


async def invite_link(contexts: Contexts, server: DaisServer, **invite: str) -> str:
    """A speaker's invite link to a session of the demo event, made by the organiser."""
    session = first_session_without_note(server)
    made = await (await organiser(contexts, server)).request.post(
        f"/api/sessions/{session['id']}/invites", data={"role": "speaker", **invite}
    )
    assert made.status == 201, await made.text()
    return str((await made.json())["url"])


@pytest.mark.parametrize("where", ["events", "event", "session", "not-found", "organiser"])
async def test_exit_control_is_first_in_tab_order_and_leaves(
    contexts: Contexts, dais_server: DaisServer, where: str
) -> None:
    """SECURITY 14: on every page anyone can open, one Tab after the page settles reaches "Exit
    this page"; pressing it signs out, clears storage and replaces the page with a neutral site."""
    session = first_session_with_note(dais_server)
    path = {
        "events": "/",
        "event": f"/e/{dais_server.slug}",
        "session": f"/e/{dais_server.slug}/sessions/{session['id']}",
        "not-found": f"/e/{dais_server.slug}/sessions/no-such-session",
        "organiser": "/organiser",
    }[where]
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(path)
    await settled(page)
    await page.evaluate("sessionStorage.setItem('x', '1'); localStorage.setItem('y', '2')")

    entries = await page.evaluate("history.length")
    await exit_comes_first(page)

    await page.keyboard.press("Enter")
    await page.wait_for_url(NEUTRAL_URL)
    assert contexts.neutral_visits == [NEUTRAL_URL]
    # replace(), not a new history entry: Back cannot return to the Dais page.
    assert await page.evaluate("history.length") == entries
    assert await page.evaluate("sessionStorage.length + localStorage.length") == 0


async def test_exit_stays_first_as_an_attendee_registers_and_joins_the_live_room(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """SECURITY 14: the event page after registering, the session page's registration form, its
    content note and the live room after Continue each move focus to announce what they show;
    after each, the next Tab still reaches "Exit this page" first, and a screen reader hears
    what the new view is."""
    session = first_session_with_note(dais_server)
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await settled(page)
    await register(page, "Robin")
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    await expect(page.locator("#view-title")).to_be_focused()
    await expect(page.locator("#view-title")).to_have_text("You are registered as Robin")
    await exit_comes_first(page)

    other = await (await contexts.new()).new_page()
    await other.goto(f"/e/{dais_server.slug}/sessions/{session['id']}")
    await settled(other)
    await expect(other.get_by_label("Display name")).to_be_visible()
    await exit_comes_first(other)
    await register(other, "Sam")
    await expect(other.get_by_role("heading", name="Content note")).to_be_visible()
    await expect(other.locator("#view-title")).to_be_focused()
    await expect(other.locator("#view-title")).to_contain_text(session["title"])
    await exit_comes_first(other)

    await other.get_by_role("button", name="Continue to the session").click()
    await expect(other.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(other.locator("#view-title")).to_be_focused()
    await expect(other.locator("#view-title")).to_have_text(f"Session room: {session['title']}")
    await exit_comes_first(other)
    await other.screenshot(path=artifacts / "session-room-exit-focused.png")

    # Back later: the note was seen, so the page goes straight to the room and joins.
    await other.reload()
    await expect(other.locator("#connection")).to_have_attribute("data-state", "live")
    await settled(other)
    await exit_comes_first(other)


async def test_exit_is_first_in_a_session_without_a_content_note_once_live(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """SECURITY 14: a registered attendee opening a session with no content note lands in the
    room, which joins the live socket by itself; then one Tab reaches "Exit this page"."""
    session = first_session_without_note(dais_server)
    context = await contexts.new()
    page = await context.new_page()
    await page.goto(f"/e/{dais_server.slug}")
    await register(page, "Kit")
    await expect(page.get_by_role("heading", name="You are registered")).to_be_visible()
    await page.goto(f"/e/{dais_server.slug}/sessions/{session['id']}")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await settled(page)
    await exit_comes_first(page)
    await page.keyboard.press("Enter")
    await page.wait_for_url(NEUTRAL_URL)


async def test_invite_page_has_the_exit_control_first_and_continue_still_signs_in(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """SECURITY 14: the invite page a speaker opens before signing in has the shared head and
    "Exit this page" first in tab order; the name on it is shown as text, never as markup;
    Continue spends the link and lands in the session."""
    name = "Dr <b>Ada</b> {{event}} Example"
    url = await invite_link(contexts, dais_server, display_name=name)
    page = await (await contexts.new()).new_page()
    response = await page.goto(url)
    assert response is not None and response.status == 200
    assert response.headers["cache-control"] == "no-store"
    await settled(page)
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Welcome, {name}")
    await expect(page.locator("main b")).to_have_count(0)
    await expect(page).to_have_title(f"Welcome, {name} · Dais")
    await expect(page.locator("main")).to_contain_text("You are invited as speaker at")
    await expect(page.locator("main")).to_contain_text("Tackling Stalking Digital Conference")
    await page.screenshot(path=artifacts / "invite-page.png", full_page=True)
    await exit_comes_first(page)

    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(re.compile(r"/e/[\w-]+/sessions/\w+$"))
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await settled(page)
    await exit_comes_first(page)


async def test_a_spent_or_forged_invite_says_so_with_the_exit_control_first(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """SECURITY 14: "Invite not usable", both from opening a spent or forged link and from
    pressing Continue on a link another tab has just spent, has "Exit this page" first."""
    url = await invite_link(contexts, dais_server, display_name="Dr Bea Example")
    first = await (await contexts.new()).new_page()
    second = await (await contexts.new()).new_page()
    await first.goto(url)
    await second.goto(url)
    await first.get_by_role("button", name="Continue").click()
    await first.wait_for_url(re.compile(r"/sessions/"))

    await second.get_by_role("button", name="Continue").click()
    await expect(second.get_by_role("heading", level=1)).to_have_text("Invite not usable")
    await settled(second)
    await second.screenshot(path=artifacts / "invite-not-usable.png", full_page=True)
    await exit_comes_first(second)

    forged = await (await contexts.new()).new_page()
    response = await forged.goto(url[: url.rindex("/") + 1] + "not-a-real-token")
    assert response is not None and response.status >= 400
    await expect(forged.get_by_role("heading", level=1)).to_have_text("Invite not usable")
    await settled(forged)
    await exit_comes_first(forged)
    await forged.keyboard.press("Enter")
    await forged.wait_for_url(NEUTRAL_URL)


async def attendee_in_a_new_session(
    contexts: Contexts, server: DaisServer, title: str
) -> tuple[BrowserContext, dict, Page]:
    """The organiser adds a session to the demo event (no content note); an attendee registers
    on its page and is in the live room. Returns the organiser, the event and the room page."""
    organiser_ = await organiser(contexts, server)
    event = (await (await organiser_.request.get("/api/events/mine")).json())[0]
    settings = await (await organiser_.request.get(f"/api/events/{event['id']}/settings")).json()
    day = settings["starts_on"]
    made = await organiser_.request.post(
        f"/api/events/{event['id']}/sessions",
        data={
            "title": title,
            "kind": "talk",
            "starts_at": f"{day}T18:00:00Z",
            "ends_at": f"{day}T18:30:00Z",
        },
    )
    assert made.status == 201, await made.text()
    session = await made.json()
    page = await (await contexts.new()).new_page()
    await page.goto(f"/e/{server.slug}/sessions/{session['id']}")
    await register(page, "Morgan")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return organiser_, {**event, "session": session}, page


async def test_the_room_reloads_itself_when_the_attendees_role_changes(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """SECURITY 14 and 21: an attendee in the live room is made a speaker of the session by the
    organiser; the server closes their socket (1008 `auth.role_changed`), the page loads again
    by itself and shows the green room, and "Exit this page" is still the first Tab stop."""
    organiser_, event, page = await attendee_in_a_new_session(
        contexts, dais_server, "Role change story"
    )
    await expect(page.locator("body")).to_have_attribute("data-role", "attendee")
    me = await (await page.request.get("/api/auth/me")).json()
    await page.evaluate("window.loadedBeforeTheRoleChanged = true")

    made = await organiser_.request.post(
        f"/api/sessions/{event['session']['id']}/invites",
        data={"role": "speaker", "participant_id": me["participant"]["id"]},
    )
    assert made.status == 201, await made.text()
    await expect(page.locator("body")).to_have_attribute("data-role", "speaker")
    assert await page.evaluate("window.loadedBeforeTheRoleChanged") is None
    await expect(page.get_by_role("heading", name="Your camera and microphone")).to_be_visible()
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await settled(page)
    await exit_comes_first(page)


async def test_a_revoked_attendee_is_told_why_the_room_closed(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """SECURITY 21: the organiser revokes an attendee who is in the live room; their socket is
    closed with 1008 `auth.revoked` and no error frame before it, and the page says access was
    withdrawn rather than a generic refusal, and does not try to reconnect."""
    organiser_, event, page = await attendee_in_a_new_session(
        contexts, dais_server, "Revocation story"
    )
    me = await (await page.request.get("/api/auth/me")).json()
    revoked = await organiser_.request.post(
        f"/api/events/{event['id']}/people/{me['participant']['id']}/revoke"
    )
    assert revoked.status == 200, await revoked.text()
    withdrawn = "Your access to this event has been withdrawn."
    await expect(page.locator("#connection")).to_have_attribute("data-state", "closed")
    await expect(page.locator("#connection")).to_have_text(withdrawn)
    await page.wait_for_timeout(1000)
    await expect(page.locator("#connection")).to_have_attribute("data-state", "closed")


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
