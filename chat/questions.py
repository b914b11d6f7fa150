"""Q&A: asking (optionally anonymously), the moderation queue, approving, voting, answering,
pinning and editing.

A pending question goes only to moderators (and its asker's own reply); attendees see it first
in `question.approved`, which is sent once per question.
"""

from __future__ import annotations

from sqlalchemy import String, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.db import new_id, utcnow
from app.errors import Conflict, Invalid, NotFound
from chat.guard import Context, LiveRouter, Permission
from chat.messages import ensure_may_post, matches_word_filter
from chat.models import Question, QuestionStatus, QuestionVote
from chat.protocol import (
    QuestionAnswer,
    QuestionAnswered,
    QuestionApprove,
    QuestionApproved,
    QuestionAsk,
    QuestionEdit,
    QuestionEdited,
    QuestionPin,
    QuestionPinned,
    QuestionReject,
    QuestionRejected,
    QuestionSubmitted,
    QuestionUnvote,
    QuestionView,
    QuestionVoted,
)
from chat.protocol import (
    QuestionVote as QuestionVoteAction,
)
from chat.roles import ALL, STAFF, person
from chat.service import question_view

live = LiveRouter()


async def get_question(
    ctx: Context, question_id: str, *, approved: bool = False, fresh: bool = True
) -> Question:
    """A question of this room (`approved`: only an approved one), or `question.not_found`.
    Read anew unless `fresh` is False: then as already loaded in this batch, if it was (a vote
    needs no more, and a popular question's votes then cost no read each)."""
    question = await ctx.db.get(Question, question_id, populate_existing=fresh)
    if question is None or question.session_id != ctx.session.id:
        raise NotFound("question.not_found", "There is no such question.")
    if approved and question.status != QuestionStatus.approved:
        raise NotFound("question.not_found", "There is no such question.")
    return question


def _for_staff(ctx: Context, question: Question) -> QuestionView:
    return question_view(question, reveal=ctx.session.chair_sees_asker_names)


# Reads only what earlier batches committed: its question goes in with the batch's rows.
@live.action(QuestionAsk, rate="question", sees_batch=False)
async def ask(ctx: Context, action: QuestionAsk) -> dict[str, object]:
    await ensure_may_post(ctx)
    if action.anonymous and not ctx.session.anonymous_questions_allowed:
        raise Invalid(
            "question.anonymous_not_allowed",
            "This session does not take anonymous questions.",
            field="anonymous",
        )
    held = ctx.session.moderation_required or matches_word_filter(
        action.text, ctx.event.word_filter
    )
    values = {
        "id": new_id(),
        "session_id": ctx.session.id,
        "asker_id": ctx.person_id,
        "asker_name": ctx.conn.name,
        "anonymous": action.anonymous,
        "text": action.text,
        "status": QuestionStatus.pending if held else QuestionStatus.approved,
        "answered": False,
        "votes": 0,
        "created_at": utcnow(),
    }
    ctx.add_row(Question, values)
    question = Question(**values)  # not added: only to make its views
    if held:
        await ctx.record(
            QuestionSubmitted(question=_for_staff(ctx, question)),
            audience=STAFF,
            subject_id=question.id,
        )
    else:
        await ctx.record(
            QuestionApproved(question=question_view(question)), audience=ALL, subject_id=question.id
        )
    return {"question": question_view(question).model_dump(mode="json")}


# Conditional, so two moderators (in two processes) approving at once broadcast it once; the
# question as it now is comes back with it.
APPROVE = (
    update(Question)
    .where(
        Question.id == bindparam("question"),
        Question.session_id == bindparam("session"),
        Question.status == QuestionStatus.pending,
    )
    .values(status=QuestionStatus.approved)
    .returning(*Question.__table__.c)
)


# A question waiting for approval was committed in an earlier batch (its id came with that).
@live.action(QuestionApprove, permission=Permission.moderate, sees_batch=False)
async def approve(ctx: Context, action: QuestionApprove) -> None:
    approved = (
        await ctx.execute(APPROVE, {"question": action.question_id, "session": ctx.session.id})
    ).first()
    if approved is None:
        await get_question(ctx, action.question_id)  # question.not_found
        raise Conflict("question.not_pending", "This question is not waiting for approval.")
    await ctx.record(
        QuestionApproved(question=question_view(approved)), audience=ALL, subject_id=approved.id
    )


@live.action(QuestionReject, permission=Permission.moderate)
async def reject(ctx: Context, action: QuestionReject) -> None:
    question = await get_question(ctx, action.question_id)
    if question.status == QuestionStatus.rejected:
        raise Conflict("question.rejected", "This question was rejected already.")
    was_public = question.status == QuestionStatus.approved
    question.status = QuestionStatus.rejected
    room = await ctx.room_row()
    if room.pinned_question_id == question.id:
        room.pinned_question_id = None
        ctx.room_changed()
    await ctx.withdraw(question.id)
    audience = ALL if was_public else f"{STAFF} {person(question.asker_id)}"
    await ctx.record(QuestionRejected(question_id=question.id), audience=audience, subject_id=None)


# A vote, stored only for an approved question of the room and only once per person (another
# process may store the same vote at the same moment): one statement, nothing to undo.
VOTE = {
    dialect: insert(QuestionVote)
    .from_select(
        ["question_id", "person_id"],
        select(Question.id, bindparam("person", type_=String)).where(
            Question.id == bindparam("question"),
            Question.session_id == bindparam("session"),
            Question.status == QuestionStatus.approved,
        ),
    )
    .on_conflict_do_nothing()
    for dialect, insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
UNVOTE = delete(QuestionVote).where(
    QuestionVote.question_id == bindparam("question"),
    QuestionVote.person_id == bindparam("person"),
)
COUNT = (
    update(Question)
    .where(Question.id == bindparam("question"))
    .values(votes=Question.votes + bindparam("change"))
    .returning(Question.votes)
)


# The question was approved in an earlier batch (voters learn of it from that broadcast).
@live.action(QuestionVoteAction, rate="vote", sees_batch=False)
async def vote(ctx: Context, action: QuestionVoteAction) -> dict[str, object]:
    params = {
        "question": action.question_id,
        "person": ctx.person_id,
        "session": ctx.session.id,
    }
    stored = await ctx.execute(VOTE[ctx.db.get_bind().dialect.name], params)
    if not stored.rowcount:
        await get_question(ctx, action.question_id, approved=True, fresh=False)
        raise Conflict("question.already_voted", "You have voted for this question.")
    return await _count(ctx, action.question_id, +1)


@live.action(QuestionUnvote, rate="vote", sees_batch=False)
async def unvote(ctx: Context, action: QuestionUnvote) -> dict[str, object]:
    question = await get_question(ctx, action.question_id, approved=True, fresh=False)
    removed = await ctx.execute(UNVOTE, {"question": question.id, "person": ctx.person_id})
    if removed.rowcount != 1:
        raise Conflict("question.not_voted", "You have not voted for this question.")
    return await _count(ctx, question.id, -1)


async def _count(ctx: Context, question_id: str, change: int) -> dict[str, object]:
    votes = (await ctx.execute(COUNT, {"question": question_id, "change": change})).scalar()
    assert votes is not None
    await ctx.record(
        QuestionVoted(question_id=question_id, votes=votes), audience=ALL, subject_id=question_id
    )
    return {"question_id": question_id, "votes": votes}


@live.action(QuestionAnswer, permission=Permission.moderate)
async def answer(ctx: Context, action: QuestionAnswer) -> None:
    question = await get_question(ctx, action.question_id, approved=True)
    question.answered = True
    await ctx.record(
        QuestionAnswered(question_id=question.id), audience=ALL, subject_id=question.id
    )


@live.action(QuestionPin, permission=Permission.moderate)
async def pin(ctx: Context, action: QuestionPin) -> None:
    if action.question_id is not None:
        await get_question(ctx, action.question_id, approved=True)
    (await ctx.room_row()).pinned_question_id = action.question_id
    await ctx.record(QuestionPinned(question_id=action.question_id), audience=ALL)
    ctx.room_changed()


@live.action(QuestionEdit, permission=Permission.moderate)
async def edit(ctx: Context, action: QuestionEdit) -> None:
    question = await get_question(ctx, action.question_id)
    if question.status == QuestionStatus.rejected:
        raise NotFound("question.not_found", "There is no such question.")
    question.text = action.text
    await ctx.db.flush()
    if question.status == QuestionStatus.approved:
        event = QuestionEdited(question=question_view(question))
        await ctx.record(event, audience=ALL, subject_id=question.id)
    else:
        staff_view = _for_staff(ctx, question)
        await ctx.record(
            QuestionEdited(question=staff_view), audience=STAFF, subject_id=question.id
        )
