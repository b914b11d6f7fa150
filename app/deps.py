"""Request dependencies as `Annotated` aliases: the database session, settings, who is asking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import Principal, require_organiser, resolve_token
from app.errors import Unauthorized
from app.people.models import Organiser
from app.settings import Settings
from app.throttle import Throttles

COOKIE = "dais_session"


async def _db(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


class LiveAccess(Protocol):
    """What the live gateway is told when something it acts on changes over HTTP: someone's
    access (their open sockets, on every server process, stop acting with the old rights), or a
    session's or event's settings (every process reads them again before its next action).
    Called after the change is committed."""

    async def withdraw(
        self, *, person_id: str | None = None, sign_in: str | None = None
    ) -> None: ...

    async def roles_changed(self, *, session_id: str) -> None: ...

    async def settings_changed(
        self, *, session_id: str | None = None, event_id: str | None = None
    ) -> None: ...


def _live(request: Request) -> LiveAccess:
    live: LiveAccess = request.app.state.live
    return live


def _throttles(request: Request) -> Throttles:
    throttles: Throttles = request.app.state.throttles
    return throttles


def client_of(request: Request) -> str:
    """Who is asking, for throttles only: the client's address (hashed by `Throttles`, never
    stored). Behind a reverse proxy this is the proxy's unless uvicorn trusts its headers."""
    return request.client.host if request.client else "unknown"


DbSession = Annotated[AsyncSession, Depends(_db)]
AppThrottles = Annotated[Throttles, Depends(_throttles)]
Client = Annotated[str, Depends(client_of)]
Live = Annotated[LiveAccess, Depends(_live)]
AppSettings = Annotated[Settings, Depends(_settings)]


def token_from(request: Request) -> str | None:
    """The access token from the HttpOnly cookie, or an `Authorization: Bearer` header."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE)


async def _maybe_principal(request: Request, db: DbSession) -> Principal | None:
    token = token_from(request)
    if not token:
        return None
    try:
        return await resolve_token(db, token)
    except Unauthorized:
        return None


async def _principal(request: Request, db: DbSession) -> Principal:
    token = token_from(request)
    if not token:
        raise Unauthorized("auth.required", "Please sign in.")
    return await resolve_token(db, token)


async def _organiser(principal: Annotated[Principal, Depends(_principal)]) -> Organiser:
    return require_organiser(principal)


MaybePrincipal = Annotated[Principal | None, Depends(_maybe_principal)]
CurrentPrincipal = Annotated[Principal, Depends(_principal)]
CurrentOrganiser = Annotated[Organiser, Depends(_organiser)]
