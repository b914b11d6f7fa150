"""The server's two kinds of peer connection: a speaker publishing to it, a client viewing from it."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from . import aiortc_hooks as hooks
from .errors import BAD_SDP, MediaError
from .forwarder import PublishedTrack, ViewerSlot
from .ice_lite import serve_ice_lite
from .port import LayersToPublisher
from .simulcast import RID_URI, answer_layers, offered_extension_ids, offered_layers

logger = logging.getLogger(__name__)

# The m-lines a publisher may send, in the order its offer lists them; further ones are refused.
PUBLISH_LABELS = {"audio": ["mic"], "video": ["camera", "screen"]}
SENDING = ("sendonly", "sendrecv")


def label_kind(label: str) -> str:
    return "audio" if label == "mic" else "video"


class Peer:
    """What both peer kinds share: identity, the aiortc connection, and closing it."""

    role = "peer"

    def __init__(
        self,
        *,
        session_id: str,
        person_id: str,
        connection_id: str,
        configuration: RTCConfiguration,
        certificate: hooks.ServerCertificate,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.session_id = session_id
        self.person_id = person_id
        self.connection_id = connection_id
        # Every peer connection of the server presents the server's one DTLS certificate.
        self.pc = hooks.server_peer_connection(configuration, certificate)
        # The server never starts a connectivity check: no client can point it at an address.
        serve_ice_lite(self.pc)
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        await self.pc.close()


def _parse(sdp: str, kind: str) -> aiortc_sdp.SessionDescription:
    if not sdp.startswith("v=0"):
        raise MediaError(BAD_SDP, f"the {kind} is not SDP")
    try:
        return aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:
        raise MediaError(BAD_SDP, f"the {kind} could not be parsed: {exc}") from exc


async def _apply_remote(pc: RTCPeerConnection, sdp: str, kind: str) -> None:
    """setRemoteDescription, turning any failure on malformed or unexpected SDP into bad_sdp."""
    description = _parse(sdp, kind)
    if kind == "offer" and not any(m.kind in ("audio", "video") for m in description.media):
        raise MediaError(BAD_SDP, "a publishing offer needs an audio or video m-line")
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
    except Exception as exc:  # aiortc raises ValueError, KeyError, InvalidStateError, ...
        raise MediaError(BAD_SDP, f"the {kind} could not be applied: {exc}") from exc


class PublishingPeer(Peer):
    """A presenter's publishing connection: the server only ever receives on it. (A client that
    may not publish never gets one: MediaServer refuses its offer first.)"""

    role = "publish"

    def __init__(self, *, max_bitrate_bps: int = 2_500_000, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.max_bitrate_bps = max_bitrate_bps
        self.tracks: dict[str, PublishedTrack] = {}
        self._labels: dict[RTCRtpTransceiver, str | None] = {}
        # The simulcast layers received, by m-line (mid -> rids, lowest first).
        self.layers: dict[str, list[str]] = {}
        # Where its tracks' dynacast goes (the server sets it): which layers to send.
        self.on_layers: Callable[[LayersToPublisher], None] | None = None

    async def accept_offer(self, sdp: str) -> str:
        await _apply_remote(self.pc, sdp, "offer")
        offered = offered_layers(sdp)
        for transceiver in self.pc.getTransceivers():
            if transceiver in self._labels:
                mid = transceiver.mid or ""
                if mid in self.layers and offered.get(mid) == self.layers[mid]:
                    # aiortc chose the m-line's extensions again: the layers' ones too.
                    hooks.receive_simulcast(transceiver, offered_extension_ids(sdp, mid))
                continue
            label = self._next_label(transceiver.kind)
            self._labels[transceiver] = label
            if label is None:
                # A surplus m-line: accept no media at all on it.
                transceiver.direction = "inactive"
            else:
                transceiver.direction = "recvonly"
                if transceiver.kind == "audio":
                    hooks.ask_for_opus_fec(transceiver)
                else:
                    hooks.cap_speaker_rate(transceiver.receiver, self.max_bitrate_bps)
                track = self.tracks[label] = PublishedTrack(
                    person_id=self.person_id, label=label, transceiver=transceiver
                )
                rids = offered.get(transceiver.mid or "")
                ids = offered_extension_ids(sdp, transceiver.mid or "") if rids else {}
                if rids and RID_URI in ids:
                    hooks.receive_simulcast(transceiver, ids)
                    track.receive_layers(rids)
                    self.layers[transceiver.mid or ""] = rids
                    track.on_layers = functools.partial(self._layers_wanted, label)
        try:
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        except Exception as exc:
            raise MediaError(BAD_SDP, f"no answer could be made: {exc}") from exc
        if self.layers:
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.transport is not None:
                    hooks.route_by_mid(transceiver.receiver.transport)
        return answer_layers(self.pc.localDescription.sdp, self.layers)

    def _layers_wanted(self, label: str, active: tuple[str, ...]) -> None:
        if self.on_layers is not None and not self.closed:
            self.on_layers(
                LayersToPublisher(
                    connection_id=self.connection_id, peer_id=self.id, label=label, active=active
                )
            )

    def same_ice(self, sdp: str) -> bool:
        """Whether `sdp` continues this connection (the same ICE username fragment)."""
        current = self.pc.remoteDescription
        return current is not None and ice_ufrag(current.sdp) == ice_ufrag(sdp)

    def _next_label(self, kind: str) -> str | None:
        used = [label for t, label in self._labels.items() if t.kind == kind]
        labels = PUBLISH_LABELS.get(kind, [])
        return labels[len(used)] if len(used) < len(labels) else None

    def sending(self) -> dict[str, PublishedTrack]:
        """The tracks the client currently says it sends (a stopped screen share drops out)."""
        return {
            label: track
            for label, track in self.tracks.items()
            if _reverse(hooks.offered_direction(track.transceiver)) in SENDING
        }

    async def close(self) -> None:
        for track in self.tracks.values():
            track.close()
        await super().close()


def ice_ufrag(sdp: str) -> str | None:
    """The first ICE username fragment in an SDP (one per BUNDLE group: browsers bundle)."""
    found = _ICE_UFRAG.search(sdp)
    return found.group(1) if found else None


_ICE_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)


def _reverse(direction: str | None) -> str | None:
    # aiortc stores the offer's direction from the server's point of view.
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction or "", direction)


def browser_safe(sdp: str) -> str:
    """The server's offer as browsers accept it. aiortc writes `a=group:BUNDLE` even with no
    m-line (nobody on stage yet); Chromium refuses that ("A BUNDLE group contains a MID=''
    matching no m= section"), so an empty group is left out."""
    lines = sdp.split("\r\n")
    return "\r\n".join(line for line in lines if line.strip() != "a=group:BUNDLE")


@dataclass(frozen=True)
class WantedTrack:
    """A published track one viewer should receive."""

    person_id: str
    label: str
    track_id: str
    stream_id: str
    source: PublishedTrack | None  # None while its publisher is reconnecting

    @property
    def kind(self) -> str:
        return label_kind(self.label)


class ViewingPeer(Peer):
    """A client's viewing connection: the server offers one sendonly m-line per forwarded track."""

    role = "watch"

    def __init__(
        self, *, sees_green_room: bool, audio_only: bool = False, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.sees_green_room = sees_green_room
        self.audio_only = audio_only  # offered the speakers' sound only
        self.slots: list[ViewerSlot] = []
        self.lock = asyncio.Lock()
        self.offers_sent = 0
        self._renegotiate = False
        self._offered: dict[ViewerSlot, tuple[str, str] | None] = {}

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected":
                for slot in self.slots:
                    slot.connected()

    async def apply(self, wanted: dict[tuple[str, str], WantedTrack]) -> bool:
        """Reserve and release slots to match `wanted`; True if the viewer needs a new offer.
        Each new m-line costs aiortc a millisecond or two of CPU: the loop gets a turn after
        each, so a burst of viewers arriving leaves room for the room's other work."""
        changed = False
        for slot in self.slots:
            if slot.key is not None and slot.key not in wanted:
                slot.release()
                changed = True
        by_key = {slot.key: slot for slot in self.slots if slot.key is not None}
        for key, track in wanted.items():
            found = by_key.get(key)
            if found is None:
                slot = self._idle_slot(track.kind)
                slot.reserve(key, track.track_id, track.stream_id)
                changed = True
                await asyncio.sleep(0)
            else:
                slot = found
            slot.set_source(track.source)
        return changed

    def _idle_slot(self, kind: str) -> ViewerSlot:
        for slot in self.slots:
            if slot.key is None and slot.kind == kind:
                return slot
        transceiver = self.pc.addTransceiver(hooks.IdleTrack(kind), direction="sendonly")
        slot = ViewerSlot(transceiver, peer_slots=self.slots)
        self.slots.append(slot)
        return slot

    async def offer(self) -> str:
        """Create and apply a new local offer (caller holds the lock)."""
        offer = await self.pc.createOffer()
        await asyncio.sleep(0)  # createOffer does not yield; setting it up is more CPU
        await self.pc.setLocalDescription(offer)
        self._offered = {slot: slot.key for slot in self.slots}
        self.offers_sent += 1
        return browser_safe(self.pc.localDescription.sdp)

    async def update(self, wanted: dict[tuple[str, str], WantedTrack]) -> str | None:
        """Apply a stage change; returns a new offer to send, or None if none is due yet."""
        async with self.lock:
            if self.closed:
                return None
            if not await self.apply(wanted) and not self._renegotiate:
                return None
            if self.pc.signalingState != "stable":
                self._renegotiate = True  # offered already: re-offer once answered
                return None
            self._renegotiate = False
            return await self.offer()

    async def accept_answer(self, sdp: str) -> bool:
        """Apply the client's answer; True if a further offer is due (the stage moved meanwhile)."""
        async with self.lock:
            if self.pc.signalingState != "have-local-offer":
                raise MediaError(BAD_SDP, "no offer is waiting for an answer on this peer")
            await _apply_remote(self.pc, sdp, "answer")
            for slot in self.slots:
                if (
                    slot.key is not None
                    and self._offered.get(slot) == slot.key
                    and slot.transceiver.currentDirection == "sendonly"
                ):
                    slot.mark_negotiated()
            return self._renegotiate

    def quality(self) -> list[dict[str, Any]]:
        """Each simulcast video's layer for this viewer (`port.Quality`)."""
        now = time.monotonic()
        videos: list[dict[str, Any]] = []
        for slot in self.slots:
            source = slot.source
            if slot.key is None or source is None or len(source.layers) < 2:
                continue
            arriving = [layer for layer in source.layers if layer.rate_bps(now) >= 0]
            if source not in arriving:
                continue
            rank = arriving.index(source) + 1
            videos.append(
                {
                    "mid": slot.transceiver.mid or "",
                    "layer": rank,
                    "layers": len(arriving),
                    "reduced": rank < len(arriving),
                }
            )
        return videos

    def describe_tracks(self) -> list[dict[str, str]]:
        """What each m-line carries, so the client can label the video it shows."""
        return [
            {
                "mid": slot.transceiver.mid or "",
                "kind": slot.kind,
                "person_id": slot.key[0],
                "source": slot.key[1],
                "track_id": slot.track_id or "",
            }
            for slot in self.slots
            if slot.key is not None
        ]

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        await super().close()
