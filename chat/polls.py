"""Polls: a moderator drafts, opens and closes one; attendees vote once while it is open; the
results go to everyone when it closes."""

from __future__ import annotations

from app.db import new_id, utcnow
from app.errors import Conflict, Invalid, NotFound
from chat.guard import Context, LiveRouter, Permission
from chat.models import Poll, PollVote
from chat.protocol import (
    PollClose,
    PollClosed,
    PollCreate,
    PollCreated,
    PollOpen,
    PollOpened,
)
from chat.protocol import (
    PollVote as PollVoteAction,
)
from chat.roles import ALL, STAFF
from chat.service import add_once, poll_counts, poll_view

live = LiveRouter()


async def get_poll(ctx: Context, poll_id: str, *, status: str | None = None) -> Poll:
    poll = await ctx.db.get(Poll, poll_id, populate_existing=True)
    if poll is None or poll.session_id != ctx.session.id:
        raise NotFound("poll.not_found", "There is no such poll.")
    if status is not None and poll.status != status:
        raise Conflict(f"poll.not_{status}", f"This poll is not {status}.")
    return poll


@live.action(PollCreate, permission=Permission.moderate)
async def create(ctx: Context, action: PollCreate) -> dict[str, object]:
    poll = Poll(
        id=new_id(),
        session_id=ctx.session.id,
        question=action.question,
        options=list(action.options),
        status="draft",
        created_at=utcnow(),
    )
    ctx.db.add(poll)
    ctx.audit_target = poll.id
    view = poll_view(poll)
    await ctx.record(PollCreated(poll=view), audience=STAFF, subject_id=poll.id)
    return {"poll": view.model_dump(mode="json")}


@live.action(PollOpen, permission=Permission.moderate)
async def open_poll(ctx: Context, action: PollOpen) -> None:
    poll = await get_poll(ctx, action.poll_id, status="draft")
    poll.status = "open"
    await ctx.record(PollOpened(poll=poll_view(poll)), audience=ALL, subject_id=poll.id)


@live.action(PollClose, permission=Permission.moderate)
async def close_poll(ctx: Context, action: PollClose) -> None:
    poll = await get_poll(ctx, action.poll_id, status="open")
    poll.status = "closed"
    counts = await poll_counts(ctx.db, poll=poll)
    await ctx.record(PollClosed(poll=poll_view(poll, counts)), audience=ALL, subject_id=poll.id)


@live.action(PollVoteAction, rate="vote")
async def vote(ctx: Context, action: PollVoteAction) -> None:
    poll = await get_poll(ctx, action.poll_id, status="open")
    if action.option >= len(poll.options):
        raise Invalid("poll.no_such_option", "There is no such option.", field="option")
    if not await add_once(
        ctx.db, PollVote, poll_id=poll.id, person_id=ctx.person_id, option=action.option
    ):
        raise Conflict("poll.already_voted", "You have voted in this poll.")
