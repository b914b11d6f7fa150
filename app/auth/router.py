"""Organiser sign-in and sign-out, and "who am I" for any signed-in person."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.auth.service import authenticate_organiser, issue_token, revoke_token
from app.deps import COOKIE, AppSettings, AppThrottles, Client, CurrentPrincipal, DbSession, Live
from app.people.models import Role
from app.people.schemas import Me, OrganiserRead, ParticipantSelf, SignIn
from app.settings import Settings

router = APIRouter(prefix="/api/auth", tags=["auth"])


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.access_token_days * 86_400,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


@router.post("/sign-in", response_model=OrganiserRead)
async def sign_in(
    body: SignIn,
    response: Response,
    db: DbSession,
    settings: AppSettings,
    throttles: AppThrottles,
    client: Client,
):
    """An organiser signs in with email and password; the token goes into an HttpOnly cookie.
    Repeated failures for one account or from one client are refused for a while (429 with
    `Retry-After`)."""
    organiser = await authenticate_organiser(
        db, email=body.email, password=body.password, throttles=throttles, client=client
    )
    token = await issue_token(db, days=settings.access_token_days, organiser_id=organiser.id)
    set_session_cookie(response, token, settings)
    return organiser


@router.post("/sign-out", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(principal: CurrentPrincipal, db: DbSession, live: Live) -> Response:
    """Sign this browser out: its token stops working and its open live sockets close."""
    await revoke_token(db, token_hash=principal.token_hash)
    await live.withdraw(sign_in=principal.token_hash)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/me", response_model=Me)
async def me(principal: CurrentPrincipal) -> Me:
    return Me(
        organiser=OrganiserRead.model_validate(principal.organiser)
        if principal.organiser
        else None,
        participant=(
            ParticipantSelf.model_validate(principal.participant) if principal.participant else None
        ),
        roles={session_id: Role(role) for session_id, role in principal.roles.items()},
    )
