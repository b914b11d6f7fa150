"""The live room in real Chromium: moderated anonymous questions, chat, and recovering by itself
when the server restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import Contexts, DaisServer, ServerProcess
from tests.browser.live_helpers import new_story

pytestmark = pytest.mark.browser

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
QUESTION = "How can survivors keep evidence of online stalking safely?"


async def test_an_anonymous_question_reaches_attendees_only_once_the_chair_approves_it(
    contexts: Contexts, dais_server: DaisServer, artifacts: Path
) -> None:
    """SECURITY.md lines 8 and 12: a pending question never reaches another attendee; once
    approved, both attendees and the speaker see it without the asker's name."""
    story = await new_story(contexts, dais_server, "Questions rehearsal")
    asker = await story.attendee("Robin Asker", **DESKTOP)
    other = await story.attendee("Sam Other", **PHONE)
    chair = await story.invited("chair", "Casey Chair", **DESKTOP)
    speaker = await story.invited("speaker", "Dr Ada Example", **DESKTOP)
    for page in (asker, other, chair, speaker):
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    await expect(asker.get_by_label("Ask anonymously")).to_be_checked()
    await asker.get_by_label("Your question").fill(QUESTION)
    await asker.get_by_role("button", name="Ask", exact=True).click()
    mine = asker.locator('[data-slot="my-questions"]')
    await expect(mine).to_contain_text(QUESTION)
    await expect(mine).to_contain_text("Waiting for the chair")

    # The chair has it in the queue; the other attendee and the speaker see nothing.
    queue = chair.locator('[data-slot="queue"]')
    await expect(queue).to_contain_text(QUESTION)
    await expect(queue).not_to_contain_text("Robin")
    await other.wait_for_timeout(500)
    await expect(other.locator('[data-slot="questions"]')).to_have_text("No questions yet.")
    await expect(speaker.locator('[data-slot="questions"]')).to_have_text(
        "No approved questions yet."
    )

    # The chair tidies the wording in the inline editor, then approves it.
    await queue.get_by_role("button", name=f"Edit: {QUESTION}").click()
    editor = queue.get_by_label("Edit the question for clarity")
    await expect(editor).to_be_focused()
    edited = QUESTION.replace("How can", "How can")  # unchanged text: Save just closes the editor
    await editor.fill(edited + " ")
    await queue.get_by_role("button", name="Save").click()
    await queue.get_by_role("button", name=f"Approve: {QUESTION}").click()
    await expect(queue).to_have_text("No questions waiting.")

    for page, slot in ((asker, "questions"), (other, "questions"), (speaker, "questions")):
        listed = page.locator(f'[data-slot="{slot}"]')
        await expect(listed).to_contain_text(QUESTION)
        await expect(listed).to_contain_text("Anonymous")
        await expect(listed).not_to_contain_text("Robin")
    await expect(mine).to_contain_text("Approved")

    # The other attendee votes; the chair pins it; everyone sees it being answered.
    await other.get_by_role("button", name=f"Vote for: {QUESTION}").click()
    await expect(chair.locator('[data-slot="questions"]')).to_contain_text("1 vote")
    await (
        chair.locator('[data-slot="questions"]')
        .get_by_role("button", name=f"Pin: {QUESTION}")
        .click()
    )
    await expect(other.locator('[data-slot="pinned"]')).to_contain_text(QUESTION)
    await expect(speaker.locator('[data-slot="pinned"]')).to_contain_text(QUESTION)

    # Chat, an announcement and a poll reach the attendee.
    await chair.get_by_label("Announcement to everyone in the session").fill(
        "We start in two minutes."
    )
    await chair.get_by_role("button", name="Post announcement").click()
    await expect(other.locator('[data-slot="announcement"]')).to_contain_text(
        "We start in two minutes."
    )
    await chair.get_by_label("Question", exact=True).fill("Have you used a stalking helpline?")
    await chair.get_by_label("Options, one a line").fill("Yes\nNo")
    await chair.get_by_role("button", name="Create poll").click()
    await chair.get_by_role("button", name="Open poll: Have you used a stalking helpline?").click()
    await asker.get_by_role("tab", name="Polls").click()
    await asker.get_by_label("Yes").check()
    await asker.get_by_role("button", name="Vote", exact=True).click()
    await expect(asker.locator('[data-slot="polls"]')).to_contain_text("your vote")
    await chair.get_by_role("button", name="Close poll: Have you used a stalking helpline?").click()
    await expect(asker.locator('[data-slot="polls"]')).to_contain_text("1 (100%)")

    assert await other.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    ), "the phone layout scrolls sideways"
    await other.screenshot(path=artifacts / "attendee-phone-live-room.png", full_page=True)
    await chair.evaluate("scrollTo(0, 0)")
    await chair.screenshot(path=artifacts / "chair-console-questions.png", full_page=True)
    assert [line for line in story.console if "pageerror" in line] == []


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


async def test_the_page_reconnects_by_itself_when_the_server_restarts(
    browser: Browser, restartable: ServerProcess
) -> None:
    """SECURITY.md line 19: the server process is stopped and started again (same port, same
    database); the attendee's page says "Reconnecting…", comes back to "Live" by itself, still
    has what was said before, and a message sent after the restart arrives."""
    contexts = Contexts(browser, restartable.server())
    story = await new_story(contexts, restartable.server(), "Restart rehearsal")
    page = await story.attendee("Robin", **DESKTOP)
    indicator = page.locator("#connection")
    await expect(indicator).to_have_attribute("data-state", "live")
    await expect(indicator).to_have_text("Live")
    await page.get_by_role("tab", name="Chat").click()
    await page.get_by_label("Message").fill("Before the restart")
    await page.get_by_role("button", name="Send").click()
    chat = page.locator('[data-slot="chat"]')
    await expect(chat).to_contain_text("Before the restart")

    restartable.stop()
    await expect(indicator).to_have_attribute("data-state", "reconnecting")
    await expect(indicator).to_have_text("Reconnecting…")
    # The composer stays open: what is typed now is kept and sent when the connection is back
    # (tests/browser/test_live_outbox.py); what needs the server there and then is disabled.
    await expect(page.get_by_label("Message")).to_be_enabled()
    await expect(page.get_by_label("Your question")).to_be_disabled()
    restartable.start()

    await expect(indicator).to_have_attribute("data-state", "live", timeout=30_000)
    await page.get_by_label("Message").fill("After the restart")
    await page.get_by_role("button", name="Send").click()
    await expect(chat).to_contain_text("After the restart")
    await expect(chat).to_contain_text("Before the restart")

    # A second attendee who joins now sees both: nothing committed was lost.
    other = await story.attendee("Sam")
    await other.get_by_role("tab", name="Chat").click()
    await expect(other.locator('[data-slot="chat"]')).to_contain_text("Before the restart")
    await expect(other.locator('[data-slot="chat"]')).to_contain_text("After the restart")
    for context in browser.contexts:
        await context.close()
    assert contexts.outside == []
