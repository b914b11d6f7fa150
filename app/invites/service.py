"""Invites: make a signed single-use link, check it, and spend it exactly once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.service import sign, signature_matches
from app.db import utcnow
from app.errors import Conflict, Gone, NotFound
from app.invites.models import Invite
from app.people.models import Participant, Role


def invite_token(key: bytes, invite: Invite) -> str:
    return f"{invite.id}.{sign(key, 'invite:' + invite.id)}"


def invite_url(base_url: str, key: bytes, invite: Invite) -> str:
    return f"{base_url.rstrip('/')}/invite/{invite_token(key, invite)}"


async def create_invite(
    db: AsyncSession,
    *,
    participant: Participant,
    session_id: str | None,
    role: Role,
    days: int,
) -> Invite:
    invite = Invite(
        event_id=participant.event_id,
        participant_id=participant.id,
        session_id=session_id,
        role=role.value,
        expires_at=utcnow() + timedelta(days=days),
    )
    db.add(invite)
    await db.commit()
    return invite


async def check_invite(db: AsyncSession, *, key: bytes, token: str) -> tuple[Invite, Participant]:
    """The invite a link stands for, if it is genuine, unused, unexpired and not revoked."""
    invite_id, _, signature = token.partition(".")
    if not invite_id or not signature_matches(key, "invite:" + invite_id, signature):
        raise NotFound("invite.invalid", "This invite link is not valid.")
    invite = await db.get(Invite, invite_id)
    if invite is None:
        raise NotFound("invite.invalid", "This invite link is not valid.")
    if invite.revoked_at is not None:
        raise Gone(
            "invite.revoked", "This invite has been withdrawn. Ask the organiser for a new one."
        )
    if invite.used_at is not None:
        raise Gone(
            "invite.used", "This invite has already been used. Ask the organiser for a new one."
        )
    if invite.expires_at <= utcnow():
        raise Gone("invite.expired", "This invite has expired. Ask the organiser for a new one.")
    participant = await db.get(Participant, invite.participant_id)
    if participant is None or participant.revoked_at is not None:
        raise Gone(
            "invite.revoked", "This invite has been withdrawn. Ask the organiser for a new one."
        )
    return invite, participant


async def accept_invite(db: AsyncSession, *, key: bytes, token: str) -> tuple[Invite, Participant]:
    """Spend the invite; a second, concurrent use loses the race and is told it was used."""
    invite, participant = await check_invite(db, key=key, token=token)
    spent = await db.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        await db.rollback()
        raise Gone("invite.used", "This invite has already been used.")
    await db.commit()
    return invite, participant


async def revoke_invite(db: AsyncSession, *, invite: Invite) -> None:
    if invite.used_at is not None:
        raise Conflict("invite.used", "This invite has already been used.")
    invite.revoked_at = utcnow()
    await db.commit()
