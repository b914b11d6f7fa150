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
    MessageView,
    ReactionSend,
    ReactionSent,
)
from chat.roles import ALL, STAFF

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
    await ctx.write_batch()  # a message the same person sent earlier in this batch counts
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


def _store(ctx: Context, kind: str, text: str, status: str) -> MessageView:
    """A message by the socket's person, added to its batch's rows; its view."""
    message_id, now = new_id(), utcnow()
    ctx.add_row(
        Message,
        {
            "id": message_id,
            "session_id": ctx.session.id,
            "author_id": ctx.person_id,
            "author_name": ctx.conn.name,
            "author_role": ctx.conn.role.value,
            "kind": kind,
            "text": text,
            "status": status,
            "created_at": now,
        },
    )
    return MessageView(
        id=message_id,
        kind=kind,  # type: ignore[arg-type]
        author_id=ctx.person_id,
        author=ctx.conn.name,
        author_role=ctx.conn.role,
        text=text,
        at=now,
    )


# Reads only what earlier batches committed (slow mode writes the batch's messages first).
@live.action(ChatSend, rate="chat", sees_batch=False)
async def send_message(ctx: Context, action: ChatSend) -> dict[str, object]:
    await ensure_may_post(ctx)
    await check_slow_mode(ctx)
    held = not ctx.staff and matches_word_filter(action.text, ctx.event.word_filter)
    view = _store(ctx, "chat", action.text, MessageStatus.held if held else MessageStatus.visible)
    if held:
        await ctx.record(MessageHeld(message=view), audience=STAFF, subject_id=view.id)
    else:
        await ctx.record(MessagePosted(message=view), audience=ALL, subject_id=view.id)
    return {"message": view.model_dump(mode="json"), "held": held}


@live.action(AnnouncementPost, permission=Permission.moderate)
async def post_announcement(ctx: Context, action: AnnouncementPost) -> dict[str, object]:
    view = _store(ctx, "announcement", action.text, MessageStatus.visible)
    ctx.audit_target = view.id
    await ctx.record(AnnouncementPosted(message=view), audience=ALL, subject_id=view.id)
    return {"message": view.model_dump(mode="json")}


@live.action(ReactionSend, rate="reaction")
async def send_reaction(ctx: Context, action: ReactionSend) -> None:
    ctx.signal(ReactionSent(reaction=action.reaction))
