"""Firefox on the stage: Debian's Firefox ESR publishes its (fake) camera and microphone as a
speaker and Chromium attendees see it; Firefox watches as an attendee while a Chromium speaker is
live. Both through the Dais media server, which forwards what each browser negotiated (VP8/Opus)
without transcoding. Safari does not run here."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import Contexts, DaisServer
from tests.browser.firefox import Firefox, firefox
from tests.browser.live_helpers import Story, new_story

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}}

# The stage video captioned with `name` (a function body for Firefox; an arrow for Playwright).
STAGE_VIDEO = """
  const figure = [...document.querySelectorAll(".stage-tiles figure")]
    .find((f) => f.querySelector("figcaption")?.textContent.startsWith(name));
  const video = figure && figure.querySelector("video");
  if (!video || !video.videoWidth) return null;
  // Firefox counts a stream's frames in mozPaintedFrames (its playback quality stays at 0).
  const frames = video.mozPaintedFrames ?? video.getVideoPlaybackQuality().totalVideoFrames;
  return { width: video.videoWidth, frames };
"""


async def video_playing_in_chromium(page: Page, name: str) -> tuple[int, int, int]:
    frames = f"(name) => {{ {STAGE_VIDEO} }}"
    await page.wait_for_function(
        f"(name) => {{ const r = ({frames})(name); return r && r.frames > 0; }}",
        arg=name,
        timeout=20_000,
    )
    before = await page.evaluate(frames, name)
    await asyncio.sleep(2)
    after = await page.evaluate(frames, name)
    return after["width"], before["frames"], after["frames"]


async def video_playing_in_firefox(browser: Firefox, name: str) -> tuple[int, int, int]:
    script = f"const name = arguments[0]; {STAGE_VIDEO}"
    try:
        before = await browser.wait_for(
            f"const r = (() => {{ {script} }})(); return r && r.frames > 0 ? r : null;", name
        )
    except TimeoutError:
        seen = await browser.run(
            "const v = [...document.querySelectorAll('video')].map((v) => [v.videoWidth,"
            " v.readyState, v.mozPaintedFrames]);"
            "return {html: document.querySelector('.stage-tiles')?.outerHTML.slice(0, 600),"
            " empty: document.querySelector('[data-slot=stage-empty]')?.textContent, v};"
        )
        raise AssertionError(f"no {name} video playing in Firefox: {seen}") from None
    await asyncio.sleep(2)
    after = await browser.run(script, name)
    return after["width"], before["frames"], after["frames"]


async def firefox_invited(browser: Firefox, story: Story, role: str, name: str) -> None:
    """Firefox opens a fresh invite link for `name` and presses Continue, as in Chromium."""
    made = await story.organiser.request.post(
        f"/api/sessions/{story.session['id']}/invites",
        data={"role": role, "display_name": name},
        headers=story.server.same_origin,
    )
    assert made.status == 201, await made.text()
    await browser.goto((await made.json())["url"])
    await browser.run("document.querySelector('button[type=submit]').click();")
    await browser.wait_for("return location.pathname === arguments[0];", story.session_path)


async def test_firefox_publishes_to_chromium_and_watches_a_chromium_speaker(
    contexts: Contexts, dais_server: DaisServer, tmp_path: Path
) -> None:
    story = await new_story(contexts, dais_server, "Firefox on stage")
    chair = await story.invited("chair", "Casey Chair", **DESKTOP)
    speaker = await story.invited("speaker", "Dr Ada Example", **DESKTOP)
    attendee = await story.attendee("Robin", **DESKTOP)
    await expect(speaker.locator('[data-slot="publish-state"]')).to_contain_text(
        "reaches Dais", timeout=20_000
    )

    # Firefox as a speaker: its camera reaches the chair's green room, then Chromium attendees.
    async with firefox(tmp_path / "speaker") as fox:
        await firefox_invited(fox, story, "speaker", "Dr Fox")
        await fox.wait_for(
            "const s = document.querySelector('[data-slot=\"publish-state\"]');"
            "return s && s.textContent.includes('reaches Dais');"
        )
        tile = chair.locator(".speaker-tile", has_text="Dr Fox")
        # Invited after the chair's page loaded: the console learns the name from the agenda.
        await expect(tile.locator(".tile-status")).to_contain_text(
            "In the green room", timeout=15_000
        )
        await tile.get_by_role("button", name="Put Dr Fox live").click()
        width, before, after = await video_playing_in_chromium(attendee, "Dr Fox")
        assert width > 0 and after > before, (width, before, after)
        # Firefox sends the camera in layers too (simulcast): the attendee gets one of them.
        fox_tile = attendee.locator(".stage-tiles figure", has_text="Dr Fox")
        await expect(fox_tile).to_have_attribute(
            "data-layer", re.compile(r"^\d/[23]$"), timeout=15_000
        )
        await fox.wait_for(
            "return document.querySelector('[data-slot=\"on-air\"]')?.dataset.live === 'true';"
        )

    # Firefox as an attendee: a Chromium speaker live on the stage plays in Firefox.
    await (
        chair.locator(".speaker-tile", has_text="Dr Ada Example")
        .get_by_role("button", name="Put Dr Ada Example live")
        .click()
    )
    async with firefox(tmp_path / "attendee") as fox:
        await fox.goto(dais_server.base_url + "/")
        status = await fox.run(
            "return fetch(arguments[0], {method: 'POST', headers: {'content-type':"
            " 'application/json'}, body: JSON.stringify({display_name: 'Sam'})})"
            ".then((r) => r.status);",
            f"/api/events/{story.event['id']}/register",
        )
        assert status in (200, 201)
        await fox.goto(dais_server.base_url + story.session_path)
        width, before, after = await video_playing_in_firefox(fox, "Dr Ada Example")
        assert width > 0 and after > before + 10, (width, before, after)
        errors = await fox.run(
            "return [...document.querySelectorAll('[role=alert]')].map((e) => e.textContent)"
            ".filter((t) => t.trim());"
        )
        assert not errors, errors
