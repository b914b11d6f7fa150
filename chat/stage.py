"""The stage over the live socket: WebRTC signalling for the media server, and the chair's
controls (go live, take off, mute, end). Stage changes reach pages as `stage.changed` (everyone)
and `green_room.changed` (presenters)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chat.bus import Envelope
from chat.connection import PRESENTER_ROLES, Connection
from chat.guard import ALL, PRESENTERS, Context, LiveRouter, Permission, SignalContext
from chat.protocol import (
    GreenRoomChanged,
    JoinResult,
    MediaAnswer,
    MediaOffered,
    MediaPublish,
    MediaWatch,
    Role,
    SessionEnd,
    StageChanged,
    StageGoLive,
    StageMute,
    StagePresenter,
    StageTakeOff,
    StageView,
)
from streaming.errors import FORBIDDEN, MediaError

if TYPE_CHECKING:
    from chat.gateway import Gateway
    from chat.stage_hosts import Deliver, Stage, StageHosts

live = LiveRouter()
log = logging.getLogger("dais.chat.stage")

# Who may send media that others see and hear. Moderators watch the green room but do not publish.
PUBLISHERS = frozenset({Role.speaker, Role.chair, Role.organiser})


def _stages(gateway: Gateway) -> StageHosts:
    stages: StageHosts = gateway.state.stages
    return stages


def stage_views(described: Stage, *, ended: bool = False) -> tuple[StageView, StageView]:
    """(what attendees see: live presenters only, what presenters see: everyone publishing)."""
    presenters = [StagePresenter.model_validate(p) for p in described["publishers"]]
    live_ids = list(described["live"])
    public = StageView(live=live_ids, presenters=[p for p in presenters if p.live], ended=ended)
    return public, StageView(live=live_ids, presenters=presenters, ended=ended)


def stage_envelopes(described: Stage, session_id: str, *, ended: bool = False) -> list[Envelope]:
    public, full = stage_views(described, ended=ended)
    return [
        Envelope("frame", session_id, ALL, None, StageChanged(stage=public).model_dump_json()),
        Envelope(
            "frame", session_id, PRESENTERS, None, GreenRoomChanged(stage=full).model_dump_json()
        ),
    ]


def _announce(ctx: Context | SignalContext, described: Stage, *, ended: bool = False) -> None:
    ctx.published += stage_envelopes(described, ctx.session_id, ended=ended)


async def _call(ctx: Context | SignalContext, op: str, **args: Any) -> tuple[Any, Stage]:
    """A media call for this socket's session, run by the process hosting its stage."""
    return await _stages(ctx.gateway).call(ctx.session_id, op, **args)


@live.on_join
async def _join_stage(gateway: Gateway, conn: Connection, result: JoinResult) -> None:
    """A socket that joins (or resumes) gets the stage as it is now in its join result; when the
    socket closes, its peer connections close too."""
    stages: StageHosts | None = getattr(gateway.state, "stages", None)
    if stages is None:
        return
    try:
        _, described = await stages.call(conn.session_id, "describe")
    except MediaError as error:  # the stage's host did not answer: join anyway, stage unknown
        log.warning("joining without the stage: %s", error.code)
        described = {"publishers": [], "live": []}
    result.stage, full = stage_views(described)
    if conn.role in PRESENTER_ROLES:
        result.green_room = full
    conn.on_close(_close_media(gateway, stages))


def _close_media(gateway: Gateway, stages: StageHosts) -> Any:
    async def closed(conn: Connection) -> None:
        outcome = await stages.close_connection(conn.session_id, conn.id)
        if outcome is not None and outcome[0]:  # it held a publisher: the stage changed
            for envelope in stage_envelopes(outcome[1], conn.session_id):
                await gateway.bus.publish(envelope)

    return closed


@live.signal(MediaPublish, rate="signal")
async def publish(ctx: SignalContext, action: MediaPublish) -> dict[str, Any]:
    """A presenter's offer. Anyone else is refused here, before the stage's host is called: no
    peer connection is made for them, so no candidate of theirs is ever used (SECURITY 22)."""
    if ctx.conn.role not in PUBLISHERS:
        raise MediaError(FORBIDDEN, "Only the chair and speakers publish media.")
    answer, described = await _call(
        ctx,
        "publish",
        session_id=ctx.session_id,
        person_id=ctx.person_id,
        connection_id=ctx.conn.id,
        may_publish=True,
        sdp=action.sdp,
    )
    _announce(ctx, described)
    return {**answer, "may_publish": True}


@live.signal(MediaWatch, rate="signal")
async def watch(ctx: SignalContext, action: MediaWatch) -> dict[str, Any]:
    offer, _ = await _call(
        ctx,
        "watch",
        session_id=ctx.session_id,
        person_id=ctx.person_id,
        connection_id=ctx.conn.id,
        sees_green_room=ctx.conn.role in PRESENTER_ROLES,
    )
    return offer  # type: ignore[no-any-return]


@live.signal(MediaAnswer, rate="signal")
async def answer(ctx: SignalContext, action: MediaAnswer) -> None:
    await _call(ctx, "answer", connection_id=ctx.conn.id, peer_id=action.peer_id, sdp=action.sdp)


@live.action(StageGoLive, permission=Permission.chair)
async def go_live(ctx: Context, action: StageGoLive) -> None:
    _, described = await _call(
        ctx, "set_live", session_id=ctx.session.id, person_id=action.person_id, live=True
    )
    _announce(ctx, described)


@live.action(StageTakeOff, permission=Permission.chair)
async def take_off(ctx: Context, action: StageTakeOff) -> None:
    _, described = await _call(
        ctx, "set_live", session_id=ctx.session.id, person_id=action.person_id, live=False
    )
    _announce(ctx, described)


@live.action(StageMute, permission=Permission.chair)
async def mute(ctx: Context, action: StageMute) -> None:
    _, described = await _call(
        ctx,
        "set_muted",
        session_id=ctx.session.id,
        person_id=action.person_id,
        kind=action.kind,
        muted=action.muted,
    )
    ctx.audit_detail = f"{action.kind} {'muted' if action.muted else 'unmuted'}"
    _announce(ctx, described)


@live.action(SessionEnd, permission=Permission.chair)
async def end(ctx: Context, action: SessionEnd) -> None:
    _, described = await _call(ctx, "end_session", session_id=ctx.session.id)
    _announce(ctx, described, ended=True)


def media_sender(stages_of: Callable[[], StageHosts]) -> Any:
    """The `send` the media server pushes its renegotiation offers through: to the viewer's socket,
    in this process or the one holding it. `stages_of()` gives the stage hosts, built after the
    media server."""

    async def send(connection_id: str, message: dict[str, Any]) -> None:
        stages_of().send_offer(connection_id, message)

    return send


def offer_deliverer(gateway_of: Callable[[], Gateway]) -> Deliver:
    """How an offer reaches a socket of this process: as a `media.offered` signal."""

    def deliver(connection_id: str, message: dict[str, Any]) -> bool:
        offered = MediaOffered(
            peer_id=message["peer_id"], sdp=message["sdp"], tracks=message.get("tracks", [])
        )
        return gateway_of().send(connection_id, offered)

    return deliver
