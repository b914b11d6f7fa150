"""People for the live browser stories: a fresh session of the demo event, with a chair and a
speaker signed in through their invite links and attendees registered with a display name."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import BrowserContext, Page

from tests.browser.conftest import Contexts, DaisServer

_numbers = itertools.count(1)


@dataclass
class Story:
    contexts: Contexts
    server: DaisServer
    event: dict[str, Any]
    session: dict[str, Any]
    organiser: BrowserContext
    console: list[str] = field(default_factory=list)

    @property
    def session_path(self) -> str:
        return f"/e/{self.server.slug}/sessions/{self.session['id']}"

    async def invited(self, role: str, name: str, **options: Any) -> Page:
        """A new browser for someone invited as `role`, on the session page."""
        made = await self.organiser.request.post(
            f"/api/sessions/{self.session['id']}/invites",
            data={"role": role, "display_name": name},
            headers=self.server.same_origin,
        )
        assert made.status == 201, await made.text()
        context = await self.contexts.new(**options)
        page = await context.new_page()
        self.watch_console(page, name)
        await page.goto((await made.json())["url"])
        await page.get_by_role("button", name="Continue").click()
        await page.wait_for_url(f"**{self.session_path}")
        return page

    async def attendee(
        self,
        name: str,
        *,
        prepare: Callable[[BrowserContext], Awaitable[None]] | None = None,
        **options: Any,
    ) -> Page:
        """A new browser for an attendee registered with only a display name, in the room.
        `prepare` gets the browser context before the page opens (to route its websocket)."""
        context = await self.contexts.new(**options)
        if prepare is not None:
            await prepare(context)
        registered = await context.request.post(
            f"/api/events/{self.event['id']}/register",
            data={"display_name": name},
            headers=self.server.same_origin,
        )
        assert registered.status in (200, 201), await registered.text()
        page = await context.new_page()
        self.watch_console(page, name)
        await page.goto(self.session_path)
        return page

    def watch_console(self, page: Page, who: str) -> None:
        def record(message: Any) -> None:
            if message.type in ("error", "warning"):
                self.console.append(f"{who}: {message.text}")

        page.on("console", record)
        page.on("pageerror", lambda error: self.console.append(f"{who}: pageerror {error}"))


async def new_story(contexts: Contexts, server: DaisServer, title: str, **session: Any) -> Story:
    """A new session in the demo event (its own room and stage), created by the organiser."""
    organiser = await contexts.new()
    signed_in = await organiser.request.post(
        "/api/auth/sign-in",
        data={"email": server.organiser_email, "password": server.organiser_password},
        headers=server.same_origin,
    )
    assert signed_in.status == 200, await signed_in.text()
    event = (await (await organiser.request.get("/api/events/mine")).json())[0]
    settings = await (await organiser.request.get(f"/api/events/{event['id']}/settings")).json()
    n = next(_numbers)
    day = settings["starts_on"]
    made = await organiser.request.post(
        f"/api/events/{event['id']}/sessions",
        data={
            "title": f"{title}",
            "kind": "talk",
            "starts_at": f"{day}T{8 + n % 10:02d}:00:00Z",
            "ends_at": f"{day}T{8 + n % 10:02d}:45:00Z",
            "moderation_required": True,
            "anonymous_questions_allowed": True,
            **session,
        },
        headers=server.same_origin,
    )
    assert made.status == 201, await made.text()
    return Story(contexts, server, settings, await made.json(), organiser)


VIDEO_FRAMES = """(selector) => {
  const v = document.querySelector(selector);
  if (!v || !v.videoWidth) return null;
  return { width: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames };
}"""

VIDEO_WORKS = """(selector) => {
  const v = document.querySelector(selector);
  return Boolean(v && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 0);
}"""
