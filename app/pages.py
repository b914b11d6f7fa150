"""The browser pages: HTML shells from `frontend/pages`, static files at `/static`, page headers.

The pages are plain HTML and JavaScript modules; everything they show comes from the HTTP API and,
in a session, from the live socket. Pages are looked up here only to answer 404 honestly.
"""

from __future__ import annotations

import re
from functools import cache
from html import escape
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.agenda.service import get_session
from app.deps import DbSession, MaybePrincipal
from app.errors import NotFound
from app.event.service import get_visible_event

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
PAGES = FRONTEND / "pages"
PARTS = PAGES / "parts"

router = APIRouter(include_in_schema=False)


@cache
def _html(name: str) -> str:
    """A page with its shared parts filled in (`{{head}}`, `{{exit}}` from `pages/parts/`), so
    every attendee page carries the one exit control and the same head."""
    text = (PAGES / f"{name}.html").read_text()
    for part in PARTS.glob("*.html"):
        text = text.replace(f"{{{{{part.stem}}}}}", part.read_text().rstrip("\n"))
    return text


_SLOT = re.compile(r"\{\{(\w+)\}\}")


def page(name: str, status_code: int = 200, /, **text: str) -> HTMLResponse:
    """The page `name`, its `{{slot}}`s filled with `text`, HTML-escaped.

    The slots are filled in one pass, so text that itself reads `{{...}}` stays as typed.
    """
    html = _SLOT.sub(lambda slot: escape(text[slot.group(1)]), _html(name))
    # no-store: after "Exit this page", going back should not show the page from the cache.
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/")
async def events_page() -> HTMLResponse:
    return page("index")


@router.get("/e/{slug}")
async def event_page(slug: str, db: DbSession, principal: MaybePrincipal) -> HTMLResponse:
    try:
        await get_visible_event(db, event_id=slug, principal=principal)
    except NotFound:
        return page("not-found", 404)
    return page("event")


@router.get("/e/{slug}/sessions/{session_id}")
async def session_page(
    slug: str, session_id: str, db: DbSession, principal: MaybePrincipal
) -> HTMLResponse:
    try:
        event = await get_visible_event(db, event_id=slug, principal=principal)
        session = await get_session(db, session_id=session_id)
    except NotFound:
        return page("not-found", 404)
    if session.event_id != event.id:
        return page("not-found", 404)
    return page("session")


@router.get("/organiser")
async def organiser_page() -> HTMLResponse:
    return page("organiser")


def _content_security_policy(host: str) -> str:
    # 'self' covers same-origin websockets in current browsers; the explicit ws:/wss: origins
    # are for the ones that read CSP level 2 strictly.
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class PageHeaders:
    """Security headers for everything a browser renders: pages, the invite page, static files.

    The API and the OpenAPI docs are left alone (the docs page loads its own scripts).
    """

    API_PREFIXES = ("/api/", "/docs", "/redoc", "/openapi.json")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.API_PREFIXES):
            await self.app(scope, receive, send)
            return
        host = "localhost"
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
        extra = [
            (b"content-security-policy", _content_security_policy(host).encode("latin-1")),
            # No other site learns where a person came from. Not `no-referrer`: under it a
            # browser sends `Origin: null` with a posted form (the invite page's Continue),
            # which the cross-site request check (app/csrf.py) rightly refuses.
            (b"referrer-policy", b"same-origin"),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (
                b"permissions-policy",
                b"camera=(self), microphone=(self), display-capture=(self), geolocation=()",
            ),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Serve the pages and `/static`, with the page security headers."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=FRONTEND), name="static")
    app.add_middleware(PageHeaders)
