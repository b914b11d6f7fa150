"""The live stage in real Chromium: a speaker publishes the fake camera from the green room, the chair
puts them live from the console, and an attendee's page plays the video (all through the Dais media
server, aiortc on the other end)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import Contexts, DaisServer
from tests.browser.live_helpers import VIDEO_FRAMES, VIDEO_WORKS, Story, new_story

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}}


async def frames_rise(page: Page, selector: str, seconds: float = 2.0) -> tuple[int, int, int]:
    """(videoWidth, frames before, frames after `seconds`) of the video element at `selector`."""
    await page.wait_for_function(VIDEO_WORKS, arg=selector, timeout=20_000)
    before = await page.evaluate(VIDEO_FRAMES, selector)
    await asyncio.sleep(seconds)
    after = await page.evaluate(VIDEO_FRAMES, selector)
    return after["width"], before["frames"], after["frames"]


async def speaker_live(
    contexts: Contexts, dais_server: DaisServer, title: str
) -> tuple[Story, Page, Page, Page, Locator]:
    """A session titled `title`: its speaker publishes from the green room and the chair puts
    them live; an attendee's page is open. (story, speaker, chair, attendee, the speaker's tile
    in the console.)"""
    story = await new_story(contexts, dais_server, title)
    speaker = await story.invited("speaker", "Dr Ada Example", **DESKTOP)
    chair = await story.invited("chair", "Casey Chair", **DESKTOP)
    attendee = await story.attendee("Robin", **DESKTOP)
    await expect(speaker.locator('[data-slot="publish-state"]')).to_contain_text(
        "reaches Dais", timeout=20_000
    )
    tile = chair.locator(".speaker-tile", has_text="Dr Ada Example")
    await tile.get_by_role("button", name="Put Dr Ada Example live").click()
    return story, speaker, chair, attendee, tile


async def test_a_speaker_goes_live_from_the_console_and_attendees_see_the_video_playing(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    story = await new_story(contexts, dais_server, "Live stage rehearsal")
    speaker = await story.invited("speaker", "Dr Ada Example", **DESKTOP)
    chair = await story.invited("chair", "Casey Chair", **DESKTOP)
    attendee = await story.attendee("Robin", **DESKTOP)

    # Everyone's page connects by itself.
    for page in (speaker, chair, attendee):
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(attendee.get_by_text("The stage opens when the chair")).to_be_visible()

    # The speaker's camera reaches the chair's green room as a live preview, not yet attendees.
    await expect(speaker.locator('[data-slot="publish-state"]')).to_contain_text(
        "reaches Dais", timeout=20_000
    )
    tile = chair.locator(".speaker-tile", has_text="Dr Ada Example")
    await expect(tile.locator(".tile-status")).to_contain_text("In the green room")
    width, before, after = await frames_rise(chair, ".speaker-tile .tile-video video")
    assert width > 0 and after > before, (width, before, after)

    # The chair mutes the speaker's video for attendees, then puts the speaker live: attendees get
    # the sound only; the speaker is told they are live.
    await tile.get_by_role("button", name="Mute Dr Ada Example's video").click()
    await expect(tile.locator(".tile-status")).to_contain_text("video off for attendees")
    await tile.get_by_role("button", name="Put Dr Ada Example live").click()
    await expect(tile.locator(".tile-status")).to_contain_text("Live on stage")
    await expect(speaker.locator('[data-slot="on-air"]')).to_have_attribute("data-live", "true")
    await expect(speaker.locator('[data-slot="on-air"]')).to_contain_text("You are live")
    await expect(attendee.locator(".stage-audio audio")).to_have_count(1)
    video = ".stage-tiles video"
    await expect(attendee.locator(video)).to_have_count(0)

    # Showing the video renegotiates the attendee's connection with a new video m-line (after the
    # audio one is bundled): the attendee's stage plays it, frames keep coming.
    await tile.get_by_role("button", name="Show Dr Ada Example's video").click()
    width, before, after = await frames_rise(attendee, video)
    assert width > 0, "the attendee's video has no size"
    assert after > before + 10, f"frames did not keep coming: {before} -> {after}"
    await expect(attendee.locator(".stage-tiles figcaption")).to_have_text("Dr Ada Example")
    # The speaker's camera comes in three layers (simulcast); this attendee's link carries the
    # best of them, so the page shows no "Low bandwidth" label.
    await expect(attendee.locator(".stage-tiles figure")).to_have_attribute(
        "data-layer", "3/3", timeout=15_000
    )
    await expect(attendee.locator('[data-slot="reduced-quality"]')).to_have_count(0)

    await attendee.wait_for_timeout(300)
    await attendee.screenshot(path=artifacts / "attendee-live-video.png")
    await chair.evaluate("scrollTo(0, 0)")
    await chair.screenshot(path=artifacts / "chair-console-speaker-live.png", full_page=True)
    await speaker.evaluate("scrollTo(0, 0)")
    await speaker.screenshot(path=artifacts / "speaker-green-room-live.png", full_page=True)

    # Taking the speaker off returns them to the green room.
    await tile.get_by_role("button", name="Take Dr Ada Example off stage").click()
    await expect(speaker.locator('[data-slot="on-air"]')).to_have_attribute("data-live", "false")
    await expect(attendee.locator(video)).to_have_count(0)

    # Ending the session asks first.
    await chair.get_by_role("button", name="End session…").click()
    await chair.get_by_role("button", name="Yes, end the session").click()
    await expect(attendee.locator('[data-slot="stage-empty"]')).to_contain_text("has ended")

    # The organiser finds the session's recording, its audit trail and its attendance chart.
    organiser = await story.organiser.new_page()
    await organiser.set_viewport_size({"width": 1280, "height": 900})
    story.watch_console(organiser, "organiser")
    await organiser.goto("/organiser")
    recordings = organiser.locator('[data-slot="recordings"]')
    await expect(recordings).to_contain_text("Live stage rehearsal")
    # Other stories record other sessions of the same event: this session's stage made one file.
    ours = recordings.locator("li.recording", has_text="Live stage rehearsal")
    await expect(ours.get_by_role("link", name=re.compile("Download"))).to_have_count(1)
    assert await ours.locator("video").count() == 1
    audit = organiser.locator('[data-slot="audit"]')
    await expect(audit).to_contain_text("Put someone live")
    await expect(audit).to_contain_text("Ended the session")
    chart = organiser.locator(".att-session", has_text="Live stage rehearsal")
    await expect(
        chart.get_by_role("img", name="People watching Live stage rehearsal over time")
    ).to_be_visible()
    await chart.get_by_text("The numbers as a table").click()
    await expect(chart.locator("tbody tr").first).to_be_visible()
    await organiser.locator("#att-heading").scroll_into_view_if_needed()
    await organiser.screenshot(path=artifacts / "organiser-reports.png", full_page=True)
    errors = [line for line in story.console if re.search(r"dais media|pageerror", line)]
    assert errors == [], errors


async def test_a_live_speaker_shares_their_screen_and_attendees_see_it_beside_the_camera(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """Chromium's screen capture (getDisplayMedia, accepted by the test browser's fake picker)
    goes out as a second video track on the speaker's connection; attendees get it by
    renegotiation, shown first and labelled, and lose it when the speaker stops sharing."""
    story, speaker, chair, attendee, tile = await speaker_live(
        contexts, dais_server, "Slides and camera"
    )
    videos = attendee.locator(".stage-tiles video")
    await expect(videos).to_have_count(1, timeout=20_000)

    await speaker.get_by_role("button", name="Share screen").click()
    await expect(speaker.get_by_role("button", name="Stop sharing")).to_be_visible()
    await expect(videos).to_have_count(2, timeout=20_000)
    screen = attendee.locator(".stage-tiles figure.screen")
    await expect(screen.locator("figcaption")).to_have_text("Dr Ada Example: screen")
    width, before, after = await frames_rise(attendee, ".stage-tiles figure.screen video")
    # One layer at the screen's full size, at a low frame rate (5 a second): text stays sharp.
    shared = await speaker.evaluate(SCREEN_SIZE)
    assert width == shared["width"] >= 640, (width, shared)
    assert 0 < after - before <= 2 * 7, (width, before, after)
    width, before, after = await frames_rise(attendee, ".stage-tiles figure:not(.screen) video")
    assert width > 0 and after > before, "the camera stopped when the screen came"
    await expect(tile.locator(".tile-status")).to_contain_text("sharing screen")
    await attendee.screenshot(path=artifacts / "attendee-screen-share.png")

    await speaker.get_by_role("button", name="Stop sharing").click()
    await expect(videos).to_have_count(1, timeout=20_000)
    await expect(screen).to_have_count(0)
    errors = [line for line in story.console if re.search(r"dais media|pageerror", line)]
    assert errors == [], errors


# The size of what the speaker's page shares (Chromium's fake screen capture).
SCREEN_SIZE = """async () => {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  const settings = stream.getVideoTracks()[0].getSettings();
  stream.getTracks().forEach((track) => track.stop());
  return { width: settings.width, height: settings.height };
}"""


RESTARTS = """async () => {
  const { restartWhenFailed } = await import("/static/js/media.js");
  const { STATE } = await import("/static/js/live.js");
  const events = [];
  const target = new EventTarget();
  target.pc = { connectionState: "new" };
  const live = { state: STATE.live };
  const stop = restartWhenFailed(target, live, () => events.push(performance.now()));
  const state = (name) => {
    target.pc.connectionState = name;
    target.dispatchEvent(new CustomEvent("state", { detail: name }));
  };
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const started = performance.now();
  state("failed");
  await sleep(2300);                       // restarted once, 2 s after "failed"
  const afterFailed = events.map((t) => Math.round(t - started));
  state("failed");                         // failing again: the wait doubles to 4 s
  await sleep(2300);
  const notYet = events.length;
  state("connected");                      // a connection that gets through resets the wait
  state("disconnected");                   // a blip that recovers within 5 s restarts nothing
  await sleep(1000);
  state("connected");
  await sleep(4500);
  const afterBlip = events.length;
  live.state = STATE.reconnecting;         // the socket is down: its rejoin restarts instead
  state("failed");
  await sleep(2300);
  stop();
  return { afterFailed, notYet, afterBlip, final: events.length };
}"""


async def test_a_failed_media_connection_restarts_by_itself_while_the_socket_stays_up(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """What pages do when their media connection fails under a socket that stays up (the process
    hosting the stage died, or the network dropped): publish or watch again after 2 s, waiting
    longer while it keeps failing; nothing for a blip, nothing while the socket itself is down."""
    page = await (await contexts.new()).new_page()
    await page.goto("/")
    result = await page.evaluate(RESTARTS)
    (restarted_at,) = result["afterFailed"]
    assert 1900 <= restarted_at <= 2300, result
    assert result["notYet"] == 1, result  # the second wait is 4 s
    assert result["afterBlip"] == 1, result
    assert result["final"] == 1, result


async def test_an_attendee_on_a_weak_connection_switches_to_audio_only_and_back(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """Robin's connection is weak: "Audio only" under the stage stops the video sent to her (the
    page watches again with `audio_only`; the server replaces her connection), the speaker's
    sound keeps playing, and switching it off brings the picture back."""
    story, _, _, attendee, _ = await speaker_live(contexts, dais_server, "Audio only rehearsal")
    video = ".stage-tiles video"
    width, before, after = await frames_rise(attendee, video)
    assert width > 0 and after > before

    audio_only = attendee.get_by_label("Audio only")
    await audio_only.check()
    await expect(attendee.locator(video)).to_have_count(0)
    await expect(attendee.locator(".stage-audio audio")).to_have_count(1)
    await attendee.wait_for_function(
        """() => { const a = document.querySelector('.stage-audio audio');
                   return a && a.srcObject && a.srcObject.getAudioTracks()[0].readyState === 'live'
                     && !a.paused; }""",
        timeout=10_000,
    )

    await audio_only.uncheck()
    width, before, after = await frames_rise(attendee, video)
    assert width > 0 and after > before + 10, (before, after)
    errors = [line for line in story.console if re.search(r"dais media|pageerror", line)]
    assert errors == [], errors
