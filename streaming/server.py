"""MediaServer: the media side of Dais as the gateway sees it -- signalling in, RTP forwarded out.

One instance lives for the whole process (built and closed in the app's lifespan). Chat reaches it
through the media port (`streaming.port.LocalMedia`) with already-authorised commands and gives it
`on_offer` to push server-made offers (`OfferToViewer`) to one socket. The keyword methods and the
older `send` (offers as `{"type": "media.offer", ...}` dicts) stay for tools and tests that drive
the server directly.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer

from . import aiortc_hooks as hooks
from . import internals_check
from .errors import (
    BAD_KIND,
    BAD_SDP,
    FORBIDDEN,
    PEER_NOT_FOUND,
    SDP_TOO_LARGE,
    TOO_MANY_PEERS,
    MediaError,
)
from .forwarder import NativeViewers
from .peers import Peer, PublishingPeer, ViewingPeer
from .port import LayersToPublisher, OfferToViewer, OnOffer, Push, StageSnapshot
from .recorder import recording_pattern
from .stage import Stage, now

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 4.0  # seconds allowed for aiortc to close one peer connection
CERTIFICATE_RENEWED_BEFORE = timedelta(days=1)

SendMessage = Callable[[str, dict[str, Any]], Awaitable[None]]
# Awaited with (session id, file, started, ended) once a recording file is complete.
OnRecording = Callable[[str, pathlib.Path, datetime, datetime], Coroutine[Any, Any, None]]


class MediaServer:
    def __init__(
        self,
        *,
        ice_servers: list[dict[str, Any]],
        recordings_dir: pathlib.Path,
        max_peers_per_person: int = 4,
        max_sdp_bytes: int = 65536,
        send: SendMessage | None = None,
        on_offer: OnOffer | None = None,
        reconnect_grace: float = 30.0,
        on_recording: OnRecording | None = None,
        max_bitrate_kbps: int = 2500,
    ) -> None:
        internals_check.check_internals()  # refuse to start on an aiortc whose internals moved
        hooks.defer_bandwidth_estimators()  # viewers' send-only m-lines never need one
        if NativeViewers.create() is None:
            logger.warning(
                "media: the C fan-out (streaming/_fanout.c) is not available (built without a C "
                "compiler, or pylibsrtp's srtp_protect changed); viewers are served by the Python "
                "path, at about twice the CPU per viewer"
            )
        self._configuration = RTCConfiguration(
            iceServers=[
                RTCIceServer(
                    urls=server["urls"],
                    username=server.get("username"),
                    credential=server.get("credential"),
                )
                for server in ice_servers
            ]
        )
        self._certificate = hooks.ServerCertificate.generateCertificate()
        self._recordings_dir = pathlib.Path(recordings_dir)
        self._max_peers = max_peers_per_person
        self._max_sdp_bytes = max_sdp_bytes
        if on_offer is None:
            if send is None:
                raise TypeError("MediaServer needs on_offer (or send) for its offers")
            on_offer = _as_messages(send)
        self._on_offer = on_offer
        self._grace = reconnect_grace
        self._max_bitrate_bps = max_bitrate_kbps * 1000
        self._on_recording = on_recording
        # Storing a finished recording is awaited at shutdown, never cancelled.
        self._recording_tasks: set[asyncio.Task[Any]] = set()
        self._stages: dict[str, Stage] = {}
        self._peers: dict[str, Peer] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    # -- signalling ----------------------------------------------------------------------------

    async def publish(
        self, *, session_id: str, person_id: str, connection_id: str, may_publish: bool, sdp: str
    ) -> dict[str, Any]:
        """Answer a presenter's offer for its publishing connection.

        A client that may not publish is refused before anything of its offer is read: no peer
        connection, no ICE, so its candidates never name an address the server sends to."""
        if not may_publish:
            raise MediaError(FORBIDDEN, "only the chair and speakers publish media")
        self._check_sdp(sdp)
        stage = self._stage(session_id)
        current = [
            p
            for p in self._peers.values()
            if isinstance(p, PublishingPeer)
            and p.session_id == session_id
            and p.person_id == person_id
        ]
        same = next(
            (p for p in current if p.connection_id == connection_id and p.same_ice(sdp)), None
        )
        if same is not None:
            # A renegotiation on the live connection, e.g. a screen share added or stopped. (New
            # ICE credentials mean a new connection from the same socket, e.g. a page restarting
            # a failed one: it replaces the old one below.)
            answer = await same.accept_offer(sdp)
            stage.attach(stage.publisher(person_id), same)
            await self._restage(stage)
            return {"peer_id": same.id, "sdp": answer}

        self._check_peer_limit(person_id, replacing=len(current))
        peer = PublishingPeer(
            session_id=session_id,
            person_id=person_id,
            connection_id=connection_id,
            configuration=self._configuration,
            certificate=self._server_certificate(),
            max_bitrate_bps=self._max_bitrate_bps,
        )
        peer.on_layers = self._push_layers
        self._register(peer)
        try:
            answer = await peer.accept_offer(sdp)
        except BaseException:
            await self._drop(peer)
            raise
        stage.attach(stage.publisher(person_id), peer)
        # The new connection replaces any earlier one of this person in this session.
        for old in current:
            await self._drop(old)
        await self._restage(stage)
        return {"peer_id": peer.id, "sdp": answer}

    async def watch(
        self,
        *,
        session_id: str,
        person_id: str,
        connection_id: str,
        sees_green_room: bool,
        audio_only: bool = False,
    ) -> dict[str, Any]:
        """Open a viewing connection; the server offers one sendonly m-line per forwarded track
        (audio only: its sound). It replaces the connection's earlier viewing connection in the
        session (a page watching again: after a failure, or switching to or from audio only)."""
        earlier: list[Peer] = [
            p
            for p in self._peers.values()
            if isinstance(p, ViewingPeer)
            and p.connection_id == connection_id
            and p.session_id == session_id
        ]
        self._check_peer_limit(person_id, replacing=len(earlier))
        await self._close_peers(earlier)
        stage = self._stage(session_id)
        peer = ViewingPeer(
            session_id=session_id,
            person_id=person_id,
            connection_id=connection_id,
            sees_green_room=sees_green_room,
            audio_only=audio_only,
            configuration=self._configuration,
            certificate=self._server_certificate(),
        )
        self._register(peer)
        stage.viewers[peer.id] = peer
        try:
            await asyncio.sleep(0)  # a peer connection's set-up (its DTLS key) was CPU
            async with peer.lock:
                await peer.apply(stage.wanted_for(peer))
                sdp = await peer.offer()
        except BaseException:
            await self._drop(peer)
            raise
        return {"peer_id": peer.id, "sdp": sdp, "tracks": peer.describe_tracks()}

    def _server_certificate(self) -> hooks.ServerCertificate:
        """The DTLS certificate every new peer connection presents: one for the server, renewed
        a day before it expires (aiortc makes them for 30 days)."""
        if self._certificate.expires - datetime.now(UTC) < CERTIFICATE_RENEWED_BEFORE:
            self._certificate = hooks.ServerCertificate.generateCertificate()
        return self._certificate

    async def answer(self, *, connection_id: str, peer_id: str, sdp: str) -> None:
        """The client's answer to an offer the server made on a viewing connection."""
        self._check_sdp(sdp)
        peer = self._peers.get(peer_id)
        if not isinstance(peer, ViewingPeer) or peer.connection_id != connection_id or peer.closed:
            raise MediaError(PEER_NOT_FOUND, "no such viewing peer on this connection")
        if await peer.accept_answer(sdp):
            stage = self._stages.get(peer.session_id)
            if stage is not None:
                await self._update_viewer(stage, peer)

    # -- stage control -------------------------------------------------------------------------

    async def set_live(self, *, session_id: str, person_id: str, live: bool) -> None:
        stage = self._stage(session_id)
        publisher = stage.publisher(person_id)
        if live and not publisher.live:
            publisher.live_since = now()
        publisher.live = live
        await self._restage(stage)

    async def set_muted(self, *, session_id: str, person_id: str, kind: str, muted: bool) -> None:
        if kind not in ("audio", "video"):
            raise MediaError(BAD_KIND, "kind must be 'audio' or 'video'", field="kind")
        stage = self._stage(session_id)
        stage.publisher(person_id).muted[kind] = muted
        await self._restage(stage)

    def snapshot(self, session_id: str) -> StageSnapshot:
        """The session's stage as it is now (empty if this server holds nothing of it)."""
        stage = self._stages.get(session_id)
        return StageSnapshot(session_id) if stage is None else stage.snapshot()

    def stage(self, session_id: str) -> dict[str, Any]:
        """`snapshot()` as plain data."""
        return self.snapshot(session_id).to_data()

    def hosts(self, session_id: str) -> bool:
        """Whether this server holds anything of the session: its stage or a peer in it."""
        return session_id in self._stages or any(
            peer.session_id == session_id for peer in self._peers.values()
        )

    def recordings(self, session_id: str) -> list[pathlib.Path]:
        """Finished recordings of this session, oldest first."""
        if not self._recordings_dir.is_dir():
            return []
        pattern = recording_pattern(session_id)
        stage = self._stages.get(session_id)
        in_progress = stage.recorder.path if stage is not None and stage.recorder else None
        return sorted(
            path
            for path in self._recordings_dir.iterdir()
            if pattern.fullmatch(path.name) and path != in_progress
        )

    # -- teardown ------------------------------------------------------------------------------

    async def end_session(self, session_id: str) -> None:
        stage = self._stages.pop(session_id, None)
        if stage is None:
            return
        for publisher in stage.publishers.values():
            if publisher.grace is not None:
                publisher.grace.cancel()
        stage.finish_recording()
        peers = [p for p in self._peers.values() if p.session_id == session_id]
        await self._close_peers(peers)

    def quality(self, connection_id: str) -> list[dict[str, Any]]:
        """Which layer of each simulcast video the socket's viewing connection gets (see
        `port.Quality`); nothing for a video sent in one layer."""
        videos: list[dict[str, Any]] = []
        for peer in self._peers.values():
            if isinstance(peer, ViewingPeer) and peer.connection_id == connection_id:
                videos += peer.quality()
        return videos

    async def close_connection(self, connection_id: str) -> None:
        peers = [p for p in self._peers.values() if p.connection_id == connection_id]
        await self._close_peers(peers)

    async def close(self) -> None:
        self._closed = True
        for session_id in list(self._stages):
            await self.end_session(session_id)
        await self._close_peers(list(self._peers.values()))
        if self._recording_tasks:
            await asyncio.gather(*self._recording_tasks, return_exceptions=True)
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------------

    def _check_sdp(self, sdp: object) -> None:
        if not isinstance(sdp, str) or not sdp.strip():
            raise MediaError(BAD_SDP, "an SDP string is required")
        if len(sdp.encode("utf-8", "replace")) > self._max_sdp_bytes:
            raise MediaError(SDP_TOO_LARGE, f"SDP larger than {self._max_sdp_bytes} bytes")

    def _check_peer_limit(self, person_id: str, replacing: int = 0) -> None:
        held = sum(1 for p in self._peers.values() if p.person_id == person_id and not p.closed)
        if held - replacing + 1 > self._max_peers:
            raise MediaError(TOO_MANY_PEERS, f"at most {self._max_peers} media connections")

    def _recorded(
        self, session_id: str, path: pathlib.Path, started: datetime, ended: datetime
    ) -> None:
        if self._on_recording is not None:
            task = asyncio.get_running_loop().create_task(
                self._on_recording(session_id, path, started, ended)
            )
            self._recording_tasks.add(task)
            task.add_done_callback(self._recording_tasks.discard)

    def _stage(self, session_id: str) -> Stage:
        stage = self._stages.get(session_id)
        if stage is None:
            stage = self._stages[session_id] = Stage(
                session_id=session_id,
                recordings_dir=self._recordings_dir,
                on_recorded=self._recorded,
            )
        return stage

    def _register(self, peer: Peer) -> None:
        self._peers[peer.id] = peer

        @peer.pc.on("connectionstatechange")
        def on_state() -> None:
            if peer.pc.connectionState == "failed" and not peer.closed:
                logger.info("peer %s failed; closing it", peer.id)
                self._spawn(self._close_peers([peer]))

    def _push_layers(self, layers: LayersToPublisher) -> None:
        """Dynacast: tell the speaker's page which layers of its video to send."""

        async def push() -> None:
            try:
                await self._on_offer(layers)
            except Exception:
                logger.exception("telling connection %s its layers failed", layers.connection_id)

        self._spawn(push())

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_peers(self, peers: list[Peer]) -> None:
        if peers:
            await asyncio.gather(*(self._drop(p) for p in peers))

    async def _drop(self, peer: Peer) -> None:
        """Forget a peer at once (forwarding to/from it stops), then let aiortc close it."""
        if self._peers.pop(peer.id, None) is None and peer.closed:
            return
        peer.closed = True
        stage = self._stages.get(peer.session_id)
        if isinstance(peer, ViewingPeer):
            for slot in peer.slots:
                slot.close()
            if stage is not None:
                stage.viewers.pop(peer.id, None)
        elif isinstance(peer, PublishingPeer):
            for track in peer.tracks.values():
                track.close()
            publisher = stage.publishers.get(peer.person_id) if stage is not None else None
            if stage is not None and publisher is not None and publisher.peer is peer:
                publisher.peer = None
                if not self._closed:
                    publisher.grace = asyncio.get_running_loop().call_later(
                        self._grace, self._grace_expired, stage, peer.person_id
                    )
                    self._spawn(self._restage(stage))
        try:
            await asyncio.wait_for(peer.pc.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            logger.warning("peer %s did not close within %.0f s", peer.id, CLOSE_TIMEOUT)
        except Exception:
            logger.exception("closing peer %s failed", peer.id)

    def _grace_expired(self, stage: Stage, person_id: str) -> None:
        publisher = stage.publishers.get(person_id)
        if publisher is None or publisher.peer is not None:
            return
        publisher.grace = None
        del stage.publishers[person_id]
        if self._stages.get(stage.session_id) is stage:
            self._spawn(self._restage(stage))

    async def _restage(self, stage: Stage) -> None:
        """Bring recording and every viewer of the stage in line with its current state."""
        stage.update_recording()
        viewers = list(stage.viewers.values())
        if viewers:
            await asyncio.gather(*(self._update_viewer(stage, v) for v in viewers))

    async def _update_viewer(self, stage: Stage, viewer: ViewingPeer) -> None:
        try:
            sdp = await viewer.update(stage.wanted_for(viewer))
        except Exception:
            if not viewer.closed:  # a viewer closed meanwhile is not worth a traceback
                logger.exception("renegotiating viewer %s failed", viewer.id)
            return
        if sdp is None:
            return
        offer = OfferToViewer(
            connection_id=viewer.connection_id,
            peer_id=viewer.id,
            sdp=sdp,
            tracks=tuple(viewer.describe_tracks()),
        )
        try:
            await self._on_offer(offer)
        except Exception:
            logger.exception("sending an offer to connection %s failed", viewer.connection_id)


def _as_messages(send: SendMessage) -> OnOffer:
    """Offers as the `{"type": "media.offer", ...}` dicts that `send` takes."""

    async def on_offer(push: Push) -> None:
        message: dict[str, Any]
        if isinstance(push, LayersToPublisher):
            message = {
                "type": "media.layers",
                "peer_id": push.peer_id,
                "label": push.label,
                "active": list(push.active),
            }
        else:
            message = {
                "type": "media.offer",
                "peer_id": push.peer_id,
                "sdp": push.sdp,
                "tracks": list(push.tracks),
            }
        await send(push.connection_id, message)

    return on_offer
