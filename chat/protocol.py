"""The live protocol, defined once: client actions, replies, and the events the server pushes.

`docs/protocol.md` carries the prose; its reference section is rendered from these models by
`python -m chat.reference` and a test keeps the two equal.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, ValidationError
from pydantic_core import from_json

from app.errors import Invalid
from app.nul import MESSAGE as NUL_MESSAGE
from app.nul import nul_field
from chat.roles import Role

# Strict: `1.0` or `true` is not taken for 1, so a reply's id is always the one sent.
RequestId = Annotated[str, StringConstraints(max_length=64, strict=True)] | StrictInt
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
QuestionText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)
]
Id = Annotated[str, StringConstraints(min_length=1, max_length=32)]
# A client-generated idempotency key: a resend with the same key is applied once.
Key = Annotated[
    str, StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", strict=True)
]


class Reaction(StrEnum):
    applause = "applause"
    heart = "heart"
    laugh = "laugh"
    thinking = "thinking"
    thumbs_up = "thumbs_up"


# ---------------------------------------------------------------------------------------------
# Client actions: every frame a client sends is one of these, with its own request id.


class Action(BaseModel):
    """`key` (optional, on actions that change the room): the client's idempotency key. The page
    keeps an action until it is answered and sends it again with the same key after reconnecting;
    the server applies a key once per person and room, and answers a repeat with the original
    result."""

    model_config = ConfigDict(extra="forbid")

    id: RequestId
    type: str
    key: Key | None = None


class RoomJoin(Action):
    """Join the room (first frame). `token` only when there is no session cookie; `last_seq`
    to resume after a reconnect."""

    type: Literal["room.join"]
    token: Annotated[str, StringConstraints(max_length=200)] | None = None
    last_seq: Annotated[int, Field(ge=0)] | None = None


class ChatSend(Action):
    type: Literal["chat.send"]
    text: Text


class QuestionAsk(Action):
    type: Literal["question.ask"]
    text: QuestionText
    anonymous: bool = False


class QuestionVote(Action):
    """Upvote an approved question, once per person."""

    type: Literal["question.vote"]
    question_id: Id


class QuestionUnvote(Action):
    type: Literal["question.unvote"]
    question_id: Id


class QuestionApprove(Action):
    type: Literal["question.approve"]
    question_id: Id


class QuestionReject(Action):
    """Reject a pending question, or take an approved one down."""

    type: Literal["question.reject"]
    question_id: Id


class QuestionAnswer(Action):
    type: Literal["question.answer"]
    question_id: Id


class QuestionPin(Action):
    """Pin the question being answered now; `null` unpins."""

    type: Literal["question.pin"]
    question_id: Id | None


class QuestionEdit(Action):
    type: Literal["question.edit"]
    question_id: Id
    text: QuestionText


class PollCreate(Action):
    type: Literal["poll.create"]
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    options: Annotated[
        list[
            Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        ],
        Field(min_length=2, max_length=10),
    ]


class PollOpen(Action):
    type: Literal["poll.open"]
    poll_id: Id


class PollClose(Action):
    type: Literal["poll.close"]
    poll_id: Id


class PollVote(Action):
    type: Literal["poll.vote"]
    poll_id: Id
    option: Annotated[int, Field(ge=0, lt=10)]


class ReactionSend(Action):
    type: Literal["reaction.send"]
    reaction: Reaction


class MessageDelete(Action):
    type: Literal["message.delete"]
    message_id: Id


class HeldRelease(Action):
    """Post a message the word filter held back."""

    type: Literal["held.release"]
    message_id: Id


class HeldDiscard(Action):
    type: Literal["held.discard"]
    message_id: Id


class PersonMute(Action):
    """Stop a person posting and asking, for `minutes` or until unmuted."""

    type: Literal["person.mute"]
    person_id: Id
    minutes: Annotated[int, Field(ge=1, le=1440)] | None = None


class PersonUnmute(Action):
    type: Literal["person.unmute"]
    person_id: Id


class PersonRemove(Action):
    """Close the person's sockets in this room; they cannot join it again."""

    type: Literal["person.remove"]
    person_id: Id


class RoomSlowMode(Action):
    """At most one chat message per `seconds` per person (0 turns it off); moderators exempt."""

    type: Literal["room.slow_mode"]
    seconds: Annotated[int, Field(ge=0, le=3600)]


class RoomLock(Action):
    """A locked room refuses new joins except by the chair, moderators and organiser."""

    type: Literal["room.lock"]
    locked: bool


class AnnouncementPost(Action):
    type: Literal["announcement.post"]
    text: Text


class RoomHistory(Action):
    """Older parts of the room than the join result holds, a page at a time: `part` is
    `messages` (going back in time; each page oldest first), `questions` (approved,
    most votes first), or for moderators `queue` (pending questions) and `held` (held messages).
    `cursor` is the join result's `more[part]` or the previous page's `cursor`. The result is
    `{items, cursor, voted}`: `cursor` null when there is no more; `voted` the ids among the
    items this person voted for."""

    type: Literal["room.history"]
    part: Literal["messages", "questions", "queue", "held"]
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)]


# SDP is checked against its own limit (64 KiB) by the media server, with its own error code.
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=96 * 1024)]


class MediaPublish(Action):
    """Offer to send camera, microphone and (as a second video) screen. Presenters only: anyone
    else is refused with `media.forbidden` and gets no peer connection. Sent again on the same
    socket to add or stop a screen share."""

    type: Literal["media.publish"]
    sdp: Sdp


class MediaWatch(Action):
    """Ask for the stage's media: the result is the server's offer (`peer_id`, `sdp`, `tracks`),
    answered with `media.answer`. Later changes arrive as `media.offered`. With `audio_only` the
    offer carries the speakers' sound and no video (an attendee's "Audio only", for a weak link).
    Sent again on the same socket, it replaces that socket's earlier viewing connection."""

    type: Literal["media.watch"]
    audio_only: bool = False


class MediaQuality(Action):
    """Ask what this socket's viewing connection gets of each video the speaker sends in layers
    (simulcast). The result's `videos` has one entry per such m-line: `mid`, `layer` (1 the
    lowest), `layers` (how many the speaker sends now), and `reduced`, true when this viewer
    gets less than the best because its link carries no more ("Low bandwidth")."""

    type: Literal["media.quality"]


class MediaAnswer(Action):
    type: Literal["media.answer"]
    peer_id: Id
    sdp: Sdp


class StageGoLive(Action):
    """Put a speaker (or the chair) from the green room on stage, seen by every attendee."""

    type: Literal["stage.go_live"]
    person_id: Id


class StageTakeOff(Action):
    """Take a speaker off stage, back to the green room."""

    type: Literal["stage.take_off"]
    person_id: Id


class StageMute(Action):
    """Mute (or unmute) a speaker's audio or video for attendees; the green room still has it."""

    type: Literal["stage.mute"]
    person_id: Id
    kind: Literal["audio", "video"]
    muted: bool


class SessionEnd(Action):
    """End the session's stage: every media connection closes and the recording is finished."""

    type: Literal["session.end"]


ACTIONS: dict[str, type[Action]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (
        RoomJoin,
        ChatSend,
        QuestionAsk,
        QuestionVote,
        QuestionUnvote,
        QuestionApprove,
        QuestionReject,
        QuestionAnswer,
        QuestionPin,
        QuestionEdit,
        PollCreate,
        PollOpen,
        PollClose,
        PollVote,
        ReactionSend,
        MessageDelete,
        HeldRelease,
        HeldDiscard,
        PersonMute,
        PersonUnmute,
        PersonRemove,
        RoomSlowMode,
        RoomLock,
        AnnouncementPost,
        RoomHistory,
        MediaPublish,
        MediaWatch,
        MediaQuality,
        MediaAnswer,
        StageGoLive,
        StageTakeOff,
        StageMute,
        SessionEnd,
    )
}


def add_actions(*models: type[Action]) -> None:
    """Make further actions parseable (e.g. `chat/stage.py`'s `media.*` and `stage.*`)."""
    for model in models:
        ACTIONS[model.model_fields["type"].annotation.__args__[0]] = model  # type: ignore[union-attr]


def load_frame(text: str) -> dict[str, Any] | None:
    """A client frame's JSON object, or None when it is not one.

    Parsed by pydantic's JSON reader, which refuses nesting deeper than a fixed limit with a
    ValueError where `json.loads` would raise RecursionError (a frame of a thousand `[`s)."""
    try:
        data = from_json(text)
    except (ValueError, TypeError, RecursionError):  # TypeError: a str with lone surrogates
        return None
    return data if isinstance(data, dict) else None


def parse_action(text: str) -> Action:
    """One client frame as its action model, or `request.invalid` / `request.unknown_type`."""
    data = load_frame(text)
    if data is None:
        raise Invalid("request.invalid", "A frame must be a JSON object.")
    # A NUL can only come from an escape (or a raw one): most frames need no walk.
    nul = nul_field(data) if "\\u0000" in text or "\x00" in text else None
    if nul is not None:
        raise Invalid("request.invalid", NUL_MESSAGE, field=nul)
    type_ = data.get("type")
    model = ACTIONS.get(type_) if isinstance(type_, str) else None
    if model is None:
        raise Invalid("request.unknown_type", "There is no such action.", field="type")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem.get("loc", ())) or None
        raise Invalid("request.invalid", str(problem.get("msg", "invalid")), field=field) from None


def request_id_of(text: str) -> RequestId | None:
    """The request id of a frame that failed to parse, when it has a usable one."""
    data = load_frame(text)
    rid = data.get("id") if data is not None else None
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return None
    return rid if isinstance(rid, int) or len(rid) <= 64 else None


# ---------------------------------------------------------------------------------------------
# What the server sends about things in the room.


class View(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MessageView(View):
    id: str
    kind: Literal["chat", "announcement"]
    # The author's id lets moderators mute or remove them; it is no more than a random handle.
    author_id: str
    author: str
    author_role: Role
    text: str
    at: datetime


class QuestionView(View):
    """`asker` is null for an anonymous question, except for a chair allowed to see names."""

    id: str
    text: str
    status: Literal["pending", "approved", "rejected"]
    anonymous: bool
    asker: str | None
    votes: int
    answered: bool
    at: datetime


class PollView(View):
    """`counts` (votes per option) once closed; running counts for moderators only."""

    id: str
    question: str
    options: list[str]
    status: Literal["draft", "open", "closed"]
    counts: list[int] | None = None


class RoomState(View):
    locked: bool
    slow_mode_seconds: int
    pinned_question_id: str | None


class StageTrack(View):
    """One forwarded track; `source` is `mic`, `camera` or `screen`."""

    track_id: str
    kind: Literal["audio", "video"]
    source: str


class StagePresenter(View):
    """Someone publishing in this session: on stage when `live`, else in the green room."""

    person_id: str
    live: bool
    connected: bool
    muted: dict[str, bool]
    tracks: list[StageTrack]


class StageView(View):
    """The stage as one audience sees it: attendees see live presenters only."""

    live: list[str]
    presenters: list[StagePresenter]
    ended: bool = False


class You(View):
    person_id: str
    name: str
    role: Role
    muted: bool


# ---------------------------------------------------------------------------------------------
# Replies: exactly one per action, carrying its request id.


class Ok(BaseModel):
    type: Literal["ok"] = "ok"
    id: RequestId
    result: dict[str, Any] = Field(default_factory=dict)


class Error(BaseModel):
    """`code` is stable API (e.g. `auth.forbidden`, `rate_limited`, `room.locked`).
    `retry_after_ms`: with `room.busy`, when to send the action again."""

    type: Literal["error"] = "error"
    id: RequestId | None
    code: str
    message: str
    field: str | None = None
    retry_after_ms: int | None = None


class JoinResult(BaseModel):
    """The result of `room.join`. A fresh join (or a resync) carries the room's state; a resume
    carries only `seq` and is followed by the missed events."""

    seq: int
    resumed: bool
    you: You
    room: RoomState
    watching: int
    messages: list[MessageView] = Field(default_factory=list)
    questions: list[QuestionView] = Field(default_factory=list)
    my_questions: list[QuestionView] = Field(default_factory=list)
    voted: list[str] = Field(default_factory=list)
    polls: list[PollView] = Field(default_factory=list)
    queue: list[QuestionView] | None = None
    held: list[MessageView] | None = None
    # Parts with more than the join result holds, and the cursor to fetch the next page of each
    # with `room.history` (`messages`, `questions`, `queue`, `held`).
    more: dict[str, str] = Field(default_factory=dict)
    # The stage now (fresh joins and resumes alike); the green room for presenters only.
    stage: StageView | None = None
    green_room: StageView | None = None


# ---------------------------------------------------------------------------------------------
# Pushed events, named in the past tense. Room events carry `seq` and are replayed on resume;
# signals (`seq` null) are not stored.


class Event(BaseModel):
    type: str
    seq: int | None = None


class MessagePosted(Event):
    type: Literal["message.posted"] = "message.posted"
    message: MessageView


class MessageHeld(Event):
    """To moderators: a message matched the event's word filter and waits for review."""

    type: Literal["message.held"] = "message.held"
    message: MessageView


class MessageDeleted(Event):
    type: Literal["message.deleted"] = "message.deleted"
    message_id: str


class AnnouncementPosted(Event):
    type: Literal["announcement.posted"] = "announcement.posted"
    message: MessageView


class QuestionSubmitted(Event):
    """To moderators: a question waits in the queue."""

    type: Literal["question.submitted"] = "question.submitted"
    question: QuestionView


class QuestionApproved(Event):
    type: Literal["question.approved"] = "question.approved"
    question: QuestionView


class QuestionRejected(Event):
    """To moderators and the asker; to everyone when an approved question is taken down."""

    type: Literal["question.rejected"] = "question.rejected"
    question_id: str


class QuestionVoted(Event):
    type: Literal["question.voted"] = "question.voted"
    question_id: str
    votes: int


class QuestionAnswered(Event):
    type: Literal["question.answered"] = "question.answered"
    question_id: str


class QuestionPinned(Event):
    type: Literal["question.pinned"] = "question.pinned"
    question_id: str | None


class QuestionEdited(Event):
    type: Literal["question.edited"] = "question.edited"
    question: QuestionView


class PollCreated(Event):
    """To moderators: a draft poll."""

    type: Literal["poll.created"] = "poll.created"
    poll: PollView


class PollOpened(Event):
    type: Literal["poll.opened"] = "poll.opened"
    poll: PollView


class PollClosed(Event):
    type: Literal["poll.closed"] = "poll.closed"
    poll: PollView


class PersonMuted(Event):
    """To moderators and the person."""

    type: Literal["person.muted"] = "person.muted"
    person_id: str
    until: datetime | None


class PersonUnmuted(Event):
    type: Literal["person.unmuted"] = "person.unmuted"
    person_id: str


class PersonRemoved(Event):
    """To moderators; the person's sockets close with 1008 `room.removed`."""

    type: Literal["person.removed"] = "person.removed"
    person_id: str


class RoomChanged(Event):
    type: Literal["room.changed"] = "room.changed"
    room: RoomState


class ReactionSent(Event):
    """Signal."""

    type: Literal["reaction.sent"] = "reaction.sent"
    reaction: Reaction


class WatchingChanged(Event):
    """Signal: how many people are in the room; `people` (display names) only when the event
    lets attendees see each other."""

    type: Literal["watching.changed"] = "watching.changed"
    count: int
    people: list[str] | None = None


class ResyncRequired(Event):
    """Signal: the resume point is outside the replay window; the join result that follows
    holds the whole room state."""

    type: Literal["resync.required"] = "resync.required"


class StageChanged(Event):
    """Signal to everyone: who is live on stage, muted, sharing a screen (also sent on join)."""

    type: Literal["stage.changed"] = "stage.changed"
    stage: StageView


class GreenRoomChanged(Event):
    """Signal to presenters: everyone publishing, live or waiting in the green room."""

    type: Literal["green_room.changed"] = "green_room.changed"
    stage: StageView


class MediaOffered(Event):
    """Signal to one socket: the server renegotiates its viewing connection (tracks added or
    removed); answer with `media.answer`. `tracks` maps each m-line (`mid`) to a presenter."""

    type: Literal["media.offered"] = "media.offered"
    peer_id: str
    sdp: str
    tracks: list[dict[str, Any]]


class MediaLayers(Event):
    """Signal to a speaker's socket (dynacast): which simulcast layers (`rid`s) of its `label`
    video ("camera") anyone needs now. The page sends those and pauses the others; a paused one
    is asked for again as soon as a viewer needs it."""

    type: Literal["media.layers"] = "media.layers"
    peer_id: str
    label: str
    active: list[str]


EVENTS: tuple[type[Event], ...] = (
    MessagePosted,
    MessageHeld,
    MessageDeleted,
    AnnouncementPosted,
    QuestionSubmitted,
    QuestionApproved,
    QuestionRejected,
    QuestionVoted,
    QuestionAnswered,
    QuestionPinned,
    QuestionEdited,
    PollCreated,
    PollOpened,
    PollClosed,
    PersonMuted,
    PersonUnmuted,
    PersonRemoved,
    RoomChanged,
    ReactionSent,
    WatchingChanged,
    ResyncRequired,
    StageChanged,
    GreenRoomChanged,
    MediaOffered,
    MediaLayers,
)

# Close codes the server uses.
CLOSE_POLICY = 1008  # bad origin (refused before accept), not authenticated in time, removed,
# or kept sending refused actions past their rate limit (reason `abuse.refused`)
CLOSE_REASON_ABUSE = "abuse.refused"
# Reasons of a 1008 close while joined: the person's access was withdrawn (revoked, signed out),
# or their role in the session changed (the page joins again with the new role).
CLOSE_REASON_REVOKED = "auth.revoked"
ROLE_CHANGED = "auth.role_changed"
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013  # this socket read too slowly and its outgoing queue filled
