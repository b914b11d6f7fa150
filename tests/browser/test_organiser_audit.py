"""The organiser reads the audit log in Chromium: a flood of refused actions is one folded line,
and what was done can be shown alone."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from playwright.async_api import expect

from tests.browser.conftest import Contexts, DaisServer
from tests.browser.live_helpers import new_story

pytestmark = pytest.mark.browser


async def test_refused_attempts_fold_and_can_be_hidden(
    contexts: Contexts, dais_server: DaisServer
) -> None:
    """SECURITY 25: an attendee sends 25 forbidden unmutes; the organiser's audit log shows
    them as one refused line with its count beside the chair's real action, and "Only what was
    done" leaves the real action alone."""
    story = await new_story(contexts, dais_server, "Audit rehearsal")
    live = dais_server.base_url.replace("http://", "ws://")
    live += f"/api/sessions/{story.session['id']}/live"
    with httpx.Client(base_url=dais_server.base_url, headers=dais_server.same_origin) as browser:
        registered = browser.post(
            f"/api/events/{story.event['id']}/register", json={"display_name": "Flooder"}
        )
        assert registered.status_code == 201, registered.text
        cookie = registered.cookies["dais_session"]
    async with websockets.connect(
        live, origin=dais_server.base_url, additional_headers={"Cookie": f"dais_session={cookie}"}
    ) as attendee:
        await attendee.send(json.dumps({"id": 0, "type": "room.join"}))
        codes = []
        for n in range(1, 26):
            await attendee.send(
                json.dumps({"id": n, "type": "person.unmute", "person_id": "x" * 32})
            )
        while len(codes) < 25:
            frame = json.loads(await attendee.recv())
            if frame["type"] == "error" and frame["id"] != 0:
                codes.append(frame["code"])
    assert codes == ["auth.forbidden"] * 20 + ["rate_limited"] * 5

    chair = await story.invited("chair", "Casey Chair")
    await chair.get_by_label("Lock the room to new people").check()
    page = await story.organiser.new_page()
    await page.goto("/organiser")
    audit = page.locator('[data-slot="audit"]')
    await expect(audit).to_contain_text("Locked or unlocked the room")
    refused = audit.locator("tr", has_text="Refused: not allowed")
    await expect(refused).to_have_count(1)
    await expect(refused).to_contain_text("×20")
    await expect(audit).to_contain_text("20 refused attempts")
    await page.get_by_label("Only what was done").check()
    await expect(audit.locator("tr", has_text="Refused")).to_have_count(0)
    await expect(audit).to_contain_text("Locked or unlocked the room")
