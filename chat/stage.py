"""The stage over the live socket: WebRTC signalling for the media server, and the chair's
controls (go live, take off, mute, end). Stage changes reach pages as `stage.changed` (everyone)
and `green_room.changed` (presenters)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chat.bus import Envelope
from chat.connection import PRESENTER_ROLES, Connection
from chat.guard import ALL, PRESENTERS, Context, LiveRouter, Permission
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

if TYPE_CHECKING:
    from chat.gateway import Gateway
    from streaming.server import MediaServer

live = LiveRouter()

# Who may send media that others see and hear. Moderators watch the green room but do not publish.
PUBLISHERS = frozenset({Role.speaker, Role.chair, Role.organiser})


def _media(gateway: Gateway) -> MediaServer:
    media: MediaServer = gateway.state.media
    return media


def stage_views(
    media: MediaServer, session_id: str, *, ended: bool = False
) -> tuple[StageView, StageView]:
    """(what attendees see: live presenters only, what presenters see: everyone publishing)."""
    described = media.stage(session_id)
    presenters = [StagePresenter.model_validate(p) for p in described["publishers"]]
    live_ids = list(described["live"])
    public = StageView(live=live_ids, presenters=[p for p in presenters if p.live], ended=ended)
    return public, StageView(live=live_ids, presenters=presenters, ended=ended)


def stage_envelopes(media: MediaServer, session_id: str, *, ended: bool = False) -> list[Envelope]:
    public, full = stage_views(media, session_id, ended=ended)
    return [
        Envelope("frame", session_id, ALL, None, StageChanged(stage=public).model_dump_json()),
        Envelope(
            "frame", session_id, PRESENTERS, None, GreenRoomChanged(stage=full).model_dump_json()
        ),
    ]


def _announce(ctx: Context, *, ended: bool = False) -> None:
    ctx.published += stage_envelopes(_media(ctx.gateway), ctx.session.id, ended=ended)


@live.on_join
def _join_stage(gateway: Gateway, conn: Connection, result: JoinResult) -> None:
    """A socket that joins (or resumes) gets the stage as it is now in its join result; when the
    socket closes, its peer connections close too."""
    media = getattr(gateway.state, "media", None)
    if media is None:
        return
    result.stage, full = stage_views(media, conn.session_id)
    if conn.role in PRESENTER_ROLES:
        result.green_room = full
    conn.on_close(_close_media(gateway, media))


def _close_media(gateway: Gateway, media: MediaServer) -> Any:
    async def closed(conn: Connection) -> None:
        held = any(
            p["connected"] and p["person_id"] == conn.person_id
            for p in media.stage(conn.session_id)["publishers"]
        )
        await media.close_connection(conn.id)
        if held:
            for envelope in stage_envelopes(media, conn.session_id):
                await gateway.bus.publish(envelope)

    return closed


@live.action(MediaPublish, rate="signal")
async def publish(ctx: Context, action: MediaPublish) -> dict[str, Any]:
    may_publish = ctx.conn.role in PUBLISHERS
    answer = await _media(ctx.gateway).publish(
        session_id=ctx.session.id,
        person_id=ctx.person_id,
        connection_id=ctx.conn.id,
        may_publish=may_publish,
        sdp=action.sdp,
    )
    if may_publish:
        _announce(ctx)
    return {**answer, "may_publish": may_publish}


@live.action(MediaWatch, rate="signal")
async def watch(ctx: Context, action: MediaWatch) -> dict[str, Any]:
    return await _media(ctx.gateway).watch(
        session_id=ctx.session.id,
        person_id=ctx.person_id,
        connection_id=ctx.conn.id,
        sees_green_room=ctx.conn.role in PRESENTER_ROLES,
    )


@live.action(MediaAnswer, rate="signal")
async def answer(ctx: Context, action: MediaAnswer) -> None:
    await _media(ctx.gateway).answer(
        connection_id=ctx.conn.id, peer_id=action.peer_id, sdp=action.sdp
    )


@live.action(StageGoLive, permission=Permission.chair)
async def go_live(ctx: Context, action: StageGoLive) -> None:
    await _media(ctx.gateway).set_live(
        session_id=ctx.session.id, person_id=action.person_id, live=True
    )
    _announce(ctx)


@live.action(StageTakeOff, permission=Permission.chair)
async def take_off(ctx: Context, action: StageTakeOff) -> None:
    await _media(ctx.gateway).set_live(
        session_id=ctx.session.id, person_id=action.person_id, live=False
    )
    _announce(ctx)


@live.action(StageMute, permission=Permission.chair)
async def mute(ctx: Context, action: StageMute) -> None:
    await _media(ctx.gateway).set_muted(
        session_id=ctx.session.id, person_id=action.person_id, kind=action.kind, muted=action.muted
    )
    ctx.audit_detail = f"{action.kind} {'muted' if action.muted else 'unmuted'}"
    _announce(ctx)


@live.action(SessionEnd, permission=Permission.chair)
async def end(ctx: Context, action: SessionEnd) -> None:
    await _media(ctx.gateway).end_session(ctx.session.id)
    _announce(ctx, ended=True)


def media_sender(gateway_of: Any) -> Any:
    """The `send` the media server pushes its renegotiation offers through: one socket, as a
    `media.offered` signal. `gateway_of()` gives the gateway, built after the media server."""

    async def send(connection_id: str, message: dict[str, Any]) -> None:
        offered = MediaOffered(
            peer_id=message["peer_id"], sdp=message["sdp"], tracks=message.get("tracks", [])
        )
        gateway_of().send(connection_id, offered)

    return send
