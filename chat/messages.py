"""Chat: posting (held for review when it matches the event's word filter), announcements and
reactions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.db import new_id, utcnow
from app.errors import Forbidden, RateLimited
from chat.guard import Context, LiveRouter, Permission
from chat.models import Message, MessageStatus
from chat.protocol import (
    AnnouncementPost,
    AnnouncementPosted,
    ChatSend,
    MessageHeld,
    MessagePosted,
    ReactionSend,
    ReactionSent,
)
from chat.roles import ALL, STAFF
from chat.service import message_view

live = LiveRouter()


def matches_word_filter(text: str, words: Sequence[str]) -> bool:
    words = [w.strip() for w in words if w and w.strip()]
    if not words:
        return False
    pattern = r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


async def ensure_may_post(ctx: Context) -> None:
    """Refuse muted people (`person.muted`)."""
    if ctx.sanctions.is_muted(ctx.person_id, utcnow()):
        raise Forbidden("person.muted", "A moderator has muted you in this room.")


async def check_slow_mode(ctx: Context) -> None:
    """One message per `slow_mode_seconds` per person, counted from the database so every
    server process agrees; moderators are exempt."""
    seconds = ctx.room.slow_mode_seconds
    if not seconds or ctx.staff:
        return
    last = await ctx.db.scalar(
        select(func.max(Message.created_at)).where(
            Message.session_id == ctx.session.id,
            Message.author_id == ctx.person_id,
            Message.kind == "chat",
        )
    )
    if last is not None and utcnow() - _aware(last) < timedelta(seconds=seconds):
        raise RateLimited("rate_limited", f"Slow mode is on: one message every {seconds} s.")


def _aware(value: datetime | str) -> datetime:
    # func.max() bypasses the column type, so SQLite hands back text and PostgreSQL a naive value.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _store(ctx: Context, kind: str, text: str, status: str) -> Message:
    """A message by the socket's person, added (written with the rest of its batch)."""
    message = Message(
        id=new_id(),
        session_id=ctx.session.id,
        author_id=ctx.person_id,
        author_name=ctx.conn.name,
        author_role=ctx.conn.role.value,
        kind=kind,
        text=text,
        status=status,
        created_at=utcnow(),
    )
    ctx.db.add(message)
    return message


@live.action(ChatSend, rate="chat")
async def send_message(ctx: Context, action: ChatSend) -> dict[str, object]:
    await ensure_may_post(ctx)
    await check_slow_mode(ctx)
    held = not ctx.staff and matches_word_filter(action.text, ctx.event.word_filter)
    message = await _store(
        ctx, "chat", action.text, MessageStatus.held if held else MessageStatus.visible
    )
    view = message_view(message)
    if held:
        await ctx.record(MessageHeld(message=view), audience=STAFF, subject_id=message.id)
    else:
        await ctx.record(MessagePosted(message=view), audience=ALL, subject_id=message.id)
    return {"message": view.model_dump(mode="json"), "held": held}


@live.action(AnnouncementPost, permission=Permission.moderate)
async def post_announcement(ctx: Context, action: AnnouncementPost) -> dict[str, object]:
    message = await _store(ctx, "announcement", action.text, MessageStatus.visible)
    ctx.audit_target = message.id
    view = message_view(message)
    await ctx.record(AnnouncementPosted(message=view), audience=ALL, subject_id=message.id)
    return {"message": view.model_dump(mode="json")}


@live.action(ReactionSend, rate="reaction")
async def send_reaction(ctx: Context, action: ReactionSend) -> None:
    ctx.signal(ReactionSent(reaction=action.reaction))
