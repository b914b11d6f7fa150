"""The media port: what chat may ask of a session's stage, as typed commands and typed answers.

Chat never calls the media server by method name. It runs frozen commands (`Publish`, `Watch`,
`Answer`, `SetLive`, `Mute`, `EndSession`, `Describe`, `CloseConnection`) through a `MediaPort`
and gets back an `Outcome`: the command's result and the stage as a `StageSnapshot` afterwards.
Two implementations: `LocalMedia` (this process's `MediaServer`) and the relay to the process
hosting the stage (`chat.stage_hosts.StageHosts`), which carries commands, results, snapshots and
errors as plain data (`encode_*` / `decode_*` here, so both ends agree on one spelling).
What the server pushes later, on its own, reaches chat through a callback (`OnOffer`): a
renegotiation offer for a viewer (`OfferToViewer`), or the layers a speaker's page should send
(`LayersToPublisher`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from app.errors import DomainError

from .errors import RELAY_FAILED, MediaError

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# -- what a stage looks like ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrackInfo:
    """One track a presenter publishes; `source` is `mic`, `camera` or `screen`."""

    track_id: str
    kind: str  # audio / video
    source: str


@dataclass(frozen=True)
class PresenterInfo:
    """Someone publishing in the session: on stage when `live`, else in the green room."""

    person_id: str
    live: bool
    connected: bool
    muted: tuple[tuple[str, bool], ...]  # (("audio", False), ("video", True))
    tracks: tuple[TrackInfo, ...]

    def muted_kinds(self) -> dict[str, bool]:
        return dict(self.muted)


@dataclass(frozen=True)
class StageSnapshot:
    """A session's stage as its host has it: presenters, who is live, viewers, the recording."""

    session_id: str
    presenters: tuple[PresenterInfo, ...] = ()
    live: tuple[str, ...] = ()
    viewers: int = 0
    recording: str | None = None  # the file being written, if any

    def to_data(self) -> dict[str, Any]:
        """As plain data (the relay's wire form, and `MediaServer.stage()`)."""
        return {
            "session_id": self.session_id,
            "publishers": [
                {
                    "person_id": p.person_id,
                    "live": p.live,
                    "connected": p.connected,
                    "muted": p.muted_kinds(),
                    "tracks": [dataclasses.asdict(t) for t in p.tracks],
                }
                for p in self.presenters
            ],
            "live": list(self.live),
            "viewers": self.viewers,
            "recording": self.recording,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> StageSnapshot:
        return cls(
            session_id=data["session_id"],
            presenters=tuple(
                PresenterInfo(
                    person_id=p["person_id"],
                    live=p["live"],
                    connected=p["connected"],
                    muted=tuple(p["muted"].items()),
                    tracks=tuple(TrackInfo(**t) for t in p["tracks"]),
                )
                for p in data["publishers"]
            ),
            live=tuple(data["live"]),
            viewers=data["viewers"],
            recording=data["recording"],
        )


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answered:
    """The server's answer to a presenter's offer, on its publishing connection `peer_id`."""

    peer_id: str
    sdp: str


@dataclass(frozen=True)
class Offer:
    """The server's offer on a new viewing connection; `tracks` maps each m-line to a presenter."""

    peer_id: str
    sdp: str
    tracks: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class Quality:
    """What a viewing socket gets of each simulcast video: one dict per m-line, `mid`, `layer`
    (its rank, 1 the lowest), `layers` (how many the speaker sends now) and `reduced` (a lower
    layer than the best arriving, because the viewer's link cannot carry more)."""

    videos: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Closed:
    """A socket's peer connections are closed; `stage_changed` when it held a publisher."""

    stage_changed: bool


@dataclass(frozen=True)
class OfferToViewer:
    """An offer the server makes on its own (tracks added or removed) for one viewing socket."""

    connection_id: str
    peer_id: str
    sdp: str
    tracks: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class LayersToPublisher:
    """Which simulcast layers of a speaker's video anyone needs now (dynacast), for the socket
    that publishes it: its page pauses the others (`setParameters`), so a speaker's uplink and
    encoder are not spent on what nobody watches."""

    connection_id: str
    peer_id: str
    label: str  # "camera"
    active: tuple[str, ...]  # the rids to send; the others are paused


# What the server pushes on its own to one socket.
Push = OfferToViewer | LayersToPublisher
OnOffer = Callable[[Push], Awaitable[None]]


@dataclass(frozen=True)
class Outcome(Generic[R_co]):
    """What a command returned, and the stage right after it."""

    result: R_co
    stage: StageSnapshot


# -- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command(Generic[R]):
    """Something asked of one session's stage (the session decides which process runs it)."""

    session_id: str


@dataclass(frozen=True)
class Publish(Command[Answered]):
    person_id: str
    connection_id: str
    sdp: str
    may_publish: bool = True


@dataclass(frozen=True)
class Watch(Command[Offer]):
    person_id: str
    connection_id: str
    sees_green_room: bool
    audio_only: bool = False


@dataclass(frozen=True)
class Answer(Command[None]):
    connection_id: str
    peer_id: str
    sdp: str


@dataclass(frozen=True)
class SetLive(Command[None]):
    person_id: str
    live: bool


@dataclass(frozen=True)
class Mute(Command[None]):
    person_id: str
    kind: str  # audio / video
    muted: bool


@dataclass(frozen=True)
class EndSession(Command[None]):
    pass


@dataclass(frozen=True)
class Describe(Command[None]):
    """Nothing changes: only the stage as it is."""


@dataclass(frozen=True)
class CloseConnection(Command[Closed]):
    connection_id: str


@dataclass(frozen=True)
class AskQuality(Command[Quality]):
    """Which layer of each video a viewing socket gets (nothing changes)."""

    connection_id: str


# Every command the port (and so the relay) accepts, by its wire name.
COMMANDS: dict[str, type[Command[Any]]] = {
    cls.__name__: cls
    for cls in (
        Publish,
        Watch,
        Answer,
        SetLive,
        Mute,
        EndSession,
        Describe,
        CloseConnection,
        AskQuality,
    )
}
RESULTS: dict[str, type[Any]] = {cls.__name__: cls for cls in (Answered, Offer, Closed, Quality)}


class MediaPort(Protocol):
    """Runs a command on a session's stage, wherever that stage lives."""

    async def run(self, command: Command[R]) -> Outcome[R]: ...


class LocalMediaPort(MediaPort, Protocol):
    """The port onto this process's own media server (`streaming.local_media.LocalMedia`), as
    stage hosting uses it: commands, and whether a session's stage is held here."""

    def hosts(self, session_id: str) -> bool: ...


# -- plain data, for the relay -------------------------------------------------------------------


def encode_command(command: Command[Any]) -> dict[str, Any]:
    name = type(command).__name__
    if COMMANDS.get(name) is not type(command):
        raise TypeError(f"not a media command: {type(command).__qualname__}")
    return {"type": name, "fields": dataclasses.asdict(command)}


def decode_command(data: dict[str, Any]) -> Command[Any]:
    """The command in `data`; a type the port does not know is refused (`media.failed`)."""
    cls = COMMANDS.get(str(data.get("type")))
    if cls is None:
        raise MediaError(RELAY_FAILED, f"not a media command: {data.get('type')!r}")
    try:
        return cls(**data["fields"])
    except (KeyError, TypeError) as error:
        raise MediaError(RELAY_FAILED, f"malformed {cls.__name__} command") from error


def encode_result(result: object) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"type": type(result).__name__, "fields": dataclasses.asdict(result)}  # type: ignore[call-overload]


def decode_result(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    cls = RESULTS[data["type"]]
    fields = dict(data["fields"])
    for name in ("tracks", "videos"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return cls(**fields)


def _error_classes() -> dict[str, type[DomainError]]:
    found: dict[str, type[DomainError]] = {}
    pending: list[type[DomainError]] = [DomainError]
    while pending:
        cls = pending.pop()
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        pending.extend(cls.__subclasses__())
    return found


def encode_error(error: DomainError) -> dict[str, Any]:
    """A domain error as data: its class, code, message, field and any other plain attributes."""
    extra = {
        name: value
        for name, value in vars(error).items()
        if name not in ("code", "message", "field")
        and isinstance(value, str | int | float | bool | type(None))
    }
    cls = type(error)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "code": error.code,
        "message": error.message,
        "field": error.field,
        "extra": extra,
    }


def decode_error(data: dict[str, Any]) -> DomainError:
    """The same error again: its own class when this process has it (else a `MediaError`), with
    its code, message and field."""
    cls = _error_classes().get(str(data.get("class")), MediaError)
    # Subclasses' constructors differ; every domain error is a DomainError underneath.
    error = cls.__new__(cls)
    DomainError.__init__(error, data["code"], data["message"], field=data.get("field"))
    for name, value in (data.get("extra") or {}).items():
        setattr(error, name, value)
    return error
