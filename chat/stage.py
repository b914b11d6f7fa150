"""The stage over the live socket: WebRTC signalling for the media server, and the chair's
controls (go live, take off, mute, end). Stage changes reach pages as `stage.changed` (everyone)
and `green_room.changed` (presenters)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from chat.bus import Envelope
from chat.connection import Connection
from chat.guard import Context, LiveGateway, LiveRouter, Permission, SignalContext
from chat.protocol import (
    GreenRoomChanged,
    JoinResult,
    MediaAnswer,
    MediaLayers,
    MediaOffered,
    MediaPublish,
    MediaQuality,
    MediaWatch,
    SessionEnd,
    StageChanged,
    StageGoLive,
    StageMute,
    StagePresenter,
    StageTakeOff,
    StageTrack,
    StageView,
)
from chat.roles import ALL, PRESENTER_ROLES, PRESENTERS, PUBLISHER_ROLES
from streaming.errors import FORBIDDEN, MediaError
from streaming.port import (
    Answer,
    AskQuality,
    Command,
    Describe,
    EndSession,
    LayersToPublisher,
    Mute,
    OnOffer,
    Outcome,
    PresenterInfo,
    Publish,
    Push,
    SetLive,
    StageSnapshot,
    Watch,
)

if TYPE_CHECKING:
    from chat.stage_hosts import Deliver, StageHosts

R = TypeVar("R")

live = LiveRouter()
log = logging.getLogger("dais.chat.stage")


def _stages(gateway: LiveGateway) -> StageHosts:
    stages: StageHosts = gateway.state.stages
    return stages


def _presenter(presenter: PresenterInfo) -> StagePresenter:
    return StagePresenter(
        person_id=presenter.person_id,
        live=presenter.live,
        connected=presenter.connected,
        muted=presenter.muted_kinds(),
        tracks=[
            StageTrack(track_id=t.track_id, kind=t.kind, source=t.source)  # type: ignore[arg-type]
            for t in presenter.tracks
        ],
    )


def stage_views(snapshot: StageSnapshot, *, ended: bool = False) -> tuple[StageView, StageView]:
    """(what attendees see: live presenters only, what presenters see: everyone publishing).
    The one place the protocol's views are made from the media server's snapshot."""
    presenters = [_presenter(p) for p in snapshot.presenters]
    live_ids = list(snapshot.live)
    public = StageView(live=live_ids, presenters=[p for p in presenters if p.live], ended=ended)
    return public, StageView(live=live_ids, presenters=presenters, ended=ended)


def stage_envelopes(
    snapshot: StageSnapshot, session_id: str, *, ended: bool = False
) -> list[Envelope]:
    public, full = stage_views(snapshot, ended=ended)
    return [
        Envelope("frame", session_id, ALL, None, StageChanged(stage=public).model_dump_json()),
        Envelope(
            "frame", session_id, PRESENTERS, None, GreenRoomChanged(stage=full).model_dump_json()
        ),
    ]


def _announce(
    ctx: Context | SignalContext, snapshot: StageSnapshot, *, ended: bool = False
) -> None:
    ctx.published += stage_envelopes(snapshot, ctx.session_id, ended=ended)


async def _run(ctx: Context | SignalContext, command: Command[R]) -> Outcome[R]:
    """A media command for this socket's session, run by the process hosting its stage."""
    return await _stages(ctx.gateway).run(command)


@live.on_join
async def _join_stage(gateway: LiveGateway, conn: Connection, result: JoinResult) -> None:
    """A socket that joins (or resumes) gets the stage as it is now in its join result; when the
    socket closes, its peer connections close too."""
    stages: StageHosts | None = getattr(gateway.state, "stages", None)
    if stages is None:
        return
    try:
        snapshot = (await stages.run(Describe(conn.session_id))).stage
    except MediaError as error:  # the stage's host did not answer: join anyway, stage unknown
        log.warning("joining without the stage: %s", error.code)
        snapshot = StageSnapshot(conn.session_id)
    result.stage, full = stage_views(snapshot)
    if conn.role in PRESENTER_ROLES:
        result.green_room = full
    conn.on_close(_close_media(gateway, stages))


def _close_media(gateway: LiveGateway, stages: StageHosts) -> Any:
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
    if ctx.conn.role not in PUBLISHER_ROLES:
        raise MediaError(FORBIDDEN, "Only the chair and speakers publish media.")
    outcome = await _run(
        ctx,
        Publish(
            ctx.session_id,
            person_id=ctx.person_id,
            connection_id=ctx.conn.id,
            sdp=action.sdp,
            may_publish=True,
        ),
    )
    _announce(ctx, outcome.stage)
    answered = outcome.result
    return {"peer_id": answered.peer_id, "sdp": answered.sdp, "may_publish": True}


@live.signal(MediaWatch, rate="signal")
async def watch(ctx: SignalContext, action: MediaWatch) -> dict[str, Any]:
    outcome = await _run(
        ctx,
        Watch(
            ctx.session_id,
            person_id=ctx.person_id,
            connection_id=ctx.conn.id,
            sees_green_room=ctx.conn.role in PRESENTER_ROLES,
            audio_only=action.audio_only,
        ),
    )
    offer = outcome.result
    return {"peer_id": offer.peer_id, "sdp": offer.sdp, "tracks": list(offer.tracks)}


@live.signal(MediaQuality, rate="signal")
async def quality(ctx: SignalContext, action: MediaQuality) -> dict[str, Any]:
    outcome = await _run(ctx, AskQuality(ctx.session_id, connection_id=ctx.conn.id))
    return {"videos": list(outcome.result.videos)}


@live.signal(MediaAnswer, rate="signal")
async def answer(ctx: SignalContext, action: MediaAnswer) -> None:
    await _run(
        ctx,
        Answer(ctx.session_id, connection_id=ctx.conn.id, peer_id=action.peer_id, sdp=action.sdp),
    )


@live.action(StageGoLive, permission=Permission.chair, ordered=False)
async def go_live(ctx: Context, action: StageGoLive) -> None:
    outcome = await _run(ctx, SetLive(ctx.session.id, person_id=action.person_id, live=True))
    _announce(ctx, outcome.stage)


@live.action(StageTakeOff, permission=Permission.chair, ordered=False)
async def take_off(ctx: Context, action: StageTakeOff) -> None:
    outcome = await _run(ctx, SetLive(ctx.session.id, person_id=action.person_id, live=False))
    _announce(ctx, outcome.stage)


@live.action(StageMute, permission=Permission.chair, ordered=False)
async def mute(ctx: Context, action: StageMute) -> None:
    outcome = await _run(
        ctx,
        Mute(ctx.session.id, person_id=action.person_id, kind=action.kind, muted=action.muted),
    )
    ctx.audit_detail = f"{action.kind} {'muted' if action.muted else 'unmuted'}"
    _announce(ctx, outcome.stage)


@live.action(SessionEnd, permission=Permission.chair, ordered=False)
async def end(ctx: Context, action: SessionEnd) -> None:
    outcome = await _run(ctx, EndSession(ctx.session.id))
    _announce(ctx, outcome.stage, ended=True)


def media_offers(stages_of: Callable[[], StageHosts]) -> OnOffer:
    """Where the media server pushes its renegotiation offers (and a speaker's layers): to the
    socket, in this process or the one holding it. `stages_of()` gives the stage hosts, built after the media
    server."""

    async def on_offer(push: Push) -> None:
        await stages_of().send_offer(push)

    return on_offer


def offer_deliverer(gateway_of: Callable[[], LiveGateway]) -> Deliver:
    """How what the media server pushes reaches a socket of this process: an offer as a
    `media.offered` signal, a speaker's layers as `media.layers`."""

    def deliver(push: Push) -> bool:
        signal: MediaOffered | MediaLayers
        if isinstance(push, LayersToPublisher):
            signal = MediaLayers(peer_id=push.peer_id, label=push.label, active=list(push.active))
        else:
            signal = MediaOffered(peer_id=push.peer_id, sdp=push.sdp, tracks=list(push.tracks))
        return gateway_of().rooms.send(push.connection_id, signal)

    return deliver
