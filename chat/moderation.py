"""Moderation: deleting messages, reviewing held ones, muting and removing people, slow mode
and locking the room. Every action here is written to the audit log by the guard."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound
from app.people.models import Participant, SessionRole
from chat.guard import Context, LiveRouter, Permission
from chat.models import Message, MessageStatus, Sanction
from chat.protocol import (
    HeldDiscard,
    HeldRelease,
    MessageDelete,
    MessageDeleted,
    MessagePosted,
    PersonMute,
    PersonMuted,
    PersonRemove,
    PersonRemoved,
    PersonUnmute,
    PersonUnmuted,
    RoomChanged,
    RoomLock,
    RoomSlowMode,
)
from chat.roles import ALL, STAFF, person
from chat.service import message_view, room_state, sanction

live = LiveRouter()


async def get_message(ctx: Context, message_id: str, *, status: str) -> Message:
    message = await ctx.db.get(Message, message_id, populate_existing=True)
    if message is None or message.session_id != ctx.session.id or message.status != status:
        raise NotFound("message.not_found", "There is no such message.")
    return message


async def _forget(ctx: Context, message: Message) -> None:
    """Delete a message: its text goes from the table and from the replay log."""
    message.status = MessageStatus.deleted
    message.text = ""
    await ctx.withdraw(message.id)


@live.action(MessageDelete, permission=Permission.moderate)
async def delete_message(ctx: Context, action: MessageDelete) -> None:
    message = await get_message(ctx, action.message_id, status=MessageStatus.visible)
    await _forget(ctx, message)
    await ctx.record(MessageDeleted(message_id=message.id), audience=ALL)


@live.action(HeldRelease, permission=Permission.moderate)
async def release_held(ctx: Context, action: HeldRelease) -> None:
    message = await get_message(ctx, action.message_id, status=MessageStatus.held)
    message.status = MessageStatus.visible
    message.created_at = utcnow()
    await ctx.db.flush()
    await ctx.record(
        MessagePosted(message=message_view(message)), audience=ALL, subject_id=message.id
    )


@live.action(HeldDiscard, permission=Permission.moderate)
async def discard_held(ctx: Context, action: HeldDiscard) -> None:
    message = await get_message(ctx, action.message_id, status=MessageStatus.held)
    await _forget(ctx, message)
    await ctx.record(MessageDeleted(message_id=message.id), audience=STAFF)


async def ensure_sanctionable(ctx: Context, person_id: str) -> None:
    """Only attendees and speakers of this event can be muted or removed."""
    participant = await ctx.db.get(Participant, person_id)
    if participant is None or participant.event_id != ctx.event.id:
        raise NotFound("person.not_found", "There is no such person at this event.")
    role = await ctx.db.scalar(
        select(SessionRole.role).where(
            SessionRole.session_id == ctx.session.id, SessionRole.participant_id == person_id
        )
    )
    if role in ("chair", "moderator"):
        raise Forbidden("person.protected", "Chairs and moderators cannot be muted or removed.")


@live.action(PersonMute, permission=Permission.moderate)
async def mute(ctx: Context, action: PersonMute) -> None:
    await ensure_sanctionable(ctx, action.person_id)
    until = utcnow() + timedelta(minutes=action.minutes) if action.minutes else None
    existing = await sanction(
        ctx.db, session_id=ctx.session.id, person_id=action.person_id, kind="mute"
    )
    if existing is None:
        ctx.db.add(
            Sanction(
                session_id=ctx.session.id, person_id=action.person_id, kind="mute", until=until
            )
        )
    else:
        existing.until = until
    ctx.audit_detail = f"minutes={action.minutes}" if action.minutes else None
    event = PersonMuted(person_id=action.person_id, until=until)
    await ctx.record(event, audience=f"{STAFF} {person(action.person_id)}")
    ctx.sanctions_changed()


@live.action(PersonUnmute, permission=Permission.moderate)
async def unmute(ctx: Context, action: PersonUnmute) -> None:
    removed = await ctx.db.execute(
        delete(Sanction).where(
            Sanction.session_id == ctx.session.id,
            Sanction.person_id == action.person_id,
            Sanction.kind == "mute",
        )
    )
    if removed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("person.not_muted", "This person is not muted.")
    event = PersonUnmuted(person_id=action.person_id)
    await ctx.record(event, audience=f"{STAFF} {person(action.person_id)}")
    ctx.sanctions_changed()


@live.action(PersonRemove, permission=Permission.moderate)
async def remove(ctx: Context, action: PersonRemove) -> None:
    await ensure_sanctionable(ctx, action.person_id)
    if await sanction(
        ctx.db, session_id=ctx.session.id, person_id=action.person_id, kind="removal"
    ):
        raise Conflict("person.removed", "This person has been removed already.")
    ctx.db.add(Sanction(session_id=ctx.session.id, person_id=action.person_id, kind="removal"))
    await ctx.record(PersonRemoved(person_id=action.person_id), audience=STAFF)
    ctx.sanctions_changed()
    ctx.kick(action.person_id)


@live.action(RoomSlowMode, permission=Permission.moderate)
async def slow_mode(ctx: Context, action: RoomSlowMode) -> None:
    room = await ctx.room_row()
    room.slow_mode_seconds = action.seconds
    ctx.audit_detail = f"seconds={action.seconds}"
    await ctx.db.flush()
    await ctx.record(RoomChanged(room=room_state(room)), audience=ALL)
    ctx.room_changed()


@live.action(RoomLock, permission=Permission.moderate)
async def lock(ctx: Context, action: RoomLock) -> None:
    room = await ctx.room_row()
    room.locked = action.locked
    ctx.audit_detail = f"locked={action.locked}"
    await ctx.db.flush()
    await ctx.record(RoomChanged(room=room_state(room)), audience=ALL)
    ctx.room_changed()
