"""Sign-in: organiser passwords (argon2), access tokens (stored as sha256), resolving a token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import AccessToken
from app.db import utcnow
from app.errors import Forbidden, Unauthorized
from app.people.models import Organiser, Participant, SessionRole
from app.throttle import SIGN_IN_PER_ACCOUNT, SIGN_IN_PER_CLIENT, Throttles

_hasher = PasswordHasher()
# Compared against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def signature_matches(key: bytes, value: str, signature: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, and links may hold any.
    return hmac.compare_digest(sign(key, value).encode(), signature.encode())


@dataclass(frozen=True)
class Principal:
    """Who is acting: an organiser, or a participant with their role in each session."""

    token_hash: str
    organiser: Organiser | None = None
    participant: Participant | None = None
    roles: dict[str, str] = field(default_factory=dict)  # session id -> chair/speaker/moderator

    @property
    def id(self) -> str:
        person = self.organiser or self.participant
        assert person is not None
        return person.id

    @property
    def display_name(self) -> str:
        if self.organiser is not None:
            return self.organiser.name
        assert self.participant is not None
        return self.participant.display_name

    def role_in(self, session_id: str) -> str | None:
        return self.roles.get(session_id)


def _password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate_organiser(
    db: AsyncSession, *, email: str, password: str, throttles: Throttles, client: str
) -> Organiser:
    """The organiser with this email and password, or `auth.bad_credentials`.

    Each try is counted against the account and the client before the password is checked (so
    tries in flight together count too), and refused with `rate_limited` past either limit; a
    right password clears the account's count. The check runs in a worker thread, never on the
    event loop."""
    email = email.lower()
    await throttles.spend(SIGN_IN_PER_CLIENT, client)
    await throttles.spend(SIGN_IN_PER_ACCOUNT, email)
    organiser = await db.scalar(select(Organiser).where(Organiser.email == email))
    password_hash = organiser.password_hash if organiser else _DUMMY_HASH
    if organiser is None or not await asyncio.to_thread(_password_matches, password_hash, password):
        raise Unauthorized("auth.bad_credentials", "That email and password do not match.")
    await throttles.forget(SIGN_IN_PER_ACCOUNT, email)
    return organiser


async def issue_token(
    db: AsyncSession,
    *,
    days: int,
    organiser_id: str | None = None,
    participant_id: str | None = None,
) -> str:
    """A new access token for one person; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    db.add(
        AccessToken(
            token_hash=hash_token(token),
            organiser_id=organiser_id,
            participant_id=participant_id,
            expires_at=utcnow() + timedelta(days=days),
        )
    )
    await db.commit()
    return token


async def revoke_token(db: AsyncSession, *, token_hash: str) -> None:
    await db.execute(
        update(AccessToken)
        .where(AccessToken.token_hash == token_hash, AccessToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    await db.commit()


async def revoke_participant_tokens(db: AsyncSession, *, participant_id: str, at: datetime) -> None:
    await db.execute(
        update(AccessToken)
        .where(AccessToken.participant_id == participant_id, AccessToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def resolve_token(db: AsyncSession, token: str) -> Principal:
    """The principal a token stands for, or `auth.invalid_token` / `auth.revoked`."""
    row = await db.get(AccessToken, hash_token(token))
    now = utcnow()
    if row is None or row.expires_at <= now:
        raise Unauthorized("auth.invalid_token", "Please sign in again.")
    if row.revoked_at is not None:
        raise Unauthorized("auth.revoked", "This sign-in has been revoked.")
    if row.organiser_id is not None:
        organiser = await db.get(Organiser, row.organiser_id)
        assert organiser is not None
        return Principal(token_hash=row.token_hash, organiser=organiser)
    participant = await db.get(Participant, row.participant_id)
    assert participant is not None
    if participant.revoked_at is not None:
        raise Unauthorized("auth.revoked", "This sign-in has been revoked.")
    rows = await db.execute(
        select(SessionRole.session_id, SessionRole.role).where(
            SessionRole.participant_id == participant.id
        )
    )
    roles = {session_id: role for session_id, role in rows}
    return Principal(token_hash=row.token_hash, participant=participant, roles=roles)


def require_organiser(principal: Principal | None) -> Organiser:
    if principal is None:
        raise Unauthorized("auth.required", "Please sign in.")
    if principal.organiser is None:
        raise Forbidden("auth.forbidden", "Only an organiser may do this.")
    return principal.organiser
